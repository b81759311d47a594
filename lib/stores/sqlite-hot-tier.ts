import { deepFreeze } from './freeze.js'
import { type Keeper, KeepingReader } from './keeping-reader.js'
import { LruMap } from './lru-map.js'
import { PathPeers } from './path-peers.js'
import { SharedLoad } from './shared-load.js'
import type { DataVersion, VersionWatch } from './sqlite-data-version.js'
import type { EntryMeta, StoredEntry } from './store.js'

interface HotKey {
  /** Replaced (never changed in place) when a body read whole is kept: hits hold the old array. */
  entries: StoredEntry[]
  sizeBytes: number
  /** When each entry's use was last recorded in the file, or it was committed (epoch ms), by index. */
  touchedMs: number[]
}

/** A hit from memory; `touch` when the use of one of its entries is due to be recorded again. */
export interface HotHit {
  entries: StoredEntry[]
  touchedMs: readonly number[]
  touch: boolean
}

/** The hot tiers of this process, by database file. */
const hotTiers = new PathPeers<HotTier>()

/** Rough bytes one entry's metadata holds in memory (a header block is a few hundred bytes). */
const META_BYTES_ESTIMATE = 1024

/** One key's entries may take at most this share of hotBytes (8 MiB of the default 32 MiB). */
const KEY_SHARE = 4

function sizeOf(entries: StoredEntry[]): number {
  return entries.reduce((total, entry) => total + entry.sizeBytes + META_BYTES_ESTIMATE, 0)
}

/**
 * This process's recently read entries, in front of SQLite, least recently used first out.
 * Another process's commit changes the database's data_version, which empties it (looked at every
 * OTHER_WRITER_CHECK_MS); a write by another store of this process on the same file empties it at once;
 * this store's own writes forget the key they touch. An inline body is kept as read. A body in a file
 * is read once by the first hit that reads it, which the hits meanwhile follow (SharedLoad), and kept
 * in one buffer; one in chunk rows is kept once one hit has read it whole (copied as it was read).
 */
export class HotTier {
  readonly #byKey = new LruMap<string, HotKey>()
  readonly #keyById = new Map<StoredEntry['id'], string>()
  /** The one read keeping each entry's body (a SharedLoad, or a KeepingReader of chunk rows). */
  readonly #keepers = new Map<StoredEntry['id'], { stopKeeping(): void }>()
  readonly #maxBytes: number
  /**
   * Keys read from the file once and not kept: a key is kept from its second read (a read never
   * repeated, as with hits spread over many entries, cost the tier's churn for nothing). As many keys
   * as the tier holds entries, so a working set that fits is kept from its second round.
   */
  readonly #readOnce: LruMap<string, true>
  /** Whether another connection committed since the tier last looked. */
  readonly #otherWrites: VersionWatch
  readonly #path: string | undefined
  #bytes = 0

  readonly #touchIntervalMs: number

  /** `path`: the database file (resolved), shared with this process's other stores; undefined for ':memory:'. */
  constructor(maxBytes: number, touchIntervalMs: number, dataVersion: DataVersion, path?: string) {
    this.#touchIntervalMs = touchIntervalMs
    this.#maxBytes = maxBytes
    this.#readOnce = new LruMap(Math.ceil(maxBytes / META_BYTES_ESTIMATE))
    this.#otherWrites = dataVersion.watch()
    this.#path = path
    hotTiers.join(path, this)
  }

  /** The entries kept for `key`, unless another store or process wrote since they were read. */
  get(key: string, nowMs: number): HotHit | undefined {
    if (this.#otherWrites.changed()) {
      this.clear()
      return undefined
    }
    const hot = this.#byKey.get(key)
    if (hot === undefined) return undefined
    this.#byKey.touch(key)
    let touch = false
    for (const touchedMs of hot.touchedMs) {
      const sinceMs = nowMs - touchedMs
      // a touch ahead of the clock (it went back) is due too
      touch ||= sinceMs >= this.#touchIntervalMs || sinceMs < 0
    }
    return { entries: hot.entries, touchedMs: hot.touchedMs, touch }
  }

  /** Notes when the uses of `key`'s entries were last recorded in the file, by index. */
  touched(key: string, touchedMs: number[]): void {
    const hot = this.#byKey.get(key)
    if (hot) hot.touchedMs = touchedMs
  }

  /** Forgets the key whose entry left the file (replaced, evicted, deleted, swept). */
  forgetEntry(id: StoredEntry['id']): void {
    const key = this.#keyById.get(id)
    if (key !== undefined) this.forget(key)
  }

  /**
   * Keeps what SQLite returned for `key` when it fits in a KEY_SHARE of hotBytes; returns the entries
   * to hand out (those kept, whose bodies not in memory yet are kept once read: #keepOnceRead).
   */
  remember(key: string, entries: StoredEntry[], touchedMs: number[]): StoredEntry[] {
    const sizeBytes = sizeOf(entries)
    if (entries.length === 0 || sizeBytes > this.#maxBytes / KEY_SHARE || this.#firstRead(key)) return entries
    this.forget(key)
    const kept = entries.map((entry) => (entry.body === undefined ? this.#keepOnceRead(key, entry) : entry))
    for (const entry of kept) {
      deepFreeze(entry)
      this.#keyById.set(entry.id, key)
    }
    this.#byKey.set(key, { entries: kept, sizeBytes, touchedMs })
    this.#bytes += sizeBytes
    for (let oldest = this.#byKey.oldestKey(); oldest !== undefined && this.#bytes > this.#maxBytes; ) {
      this.forget(oldest)
      oldest = this.#byKey.oldestKey()
    }
    return kept
  }

  /** Whether this is the key's first read from the file (lately): it is noted, not kept. */
  #firstRead(key: string): boolean {
    if (this.#readOnce.delete(key)) return false
    this.#readOnce.set(key, true)
    return true
  }

  /** Tells this process's other stores on the same file that this one wrote. */
  wrote(): void {
    for (const peer of hotTiers.of(this.#path)) if (peer !== this) peer.clear()
  }

  /** Stops hearing of the other stores' writes (the store closed). */
  close(): void {
    hotTiers.leave(this.#path, this)
    this.clear()
  }

  /**
   * `entry` with a reader that puts the body in memory: a body file is loaded once for every hit that
   * reads it meanwhile; chunk rows (read synchronously) are kept by the first hit to read them whole.
   */
  #keepOnceRead(key: string, entry: StoredEntry): StoredEntry {
    /** Whether a read may keep the body: the tier still holds the entry, and no other read keeps it. */
    const mayKeep = () => !this.#keepers.has(entry.id) && this.#indexOfCold(key, readBody) !== -1
    const keeper: Keeper = {
      claim: (reader) => {
        if (!mayKeep()) return false
        this.#keepers.set(entry.id, reader)
        return true
      },
      release: (reader) => {
        if (this.#keepers.get(entry.id) === reader) this.#keepers.delete(entry.id)
      },
      kept: (body) => this.#warmed(key, readBody, body),
    }
    let load: SharedLoad | undefined
    /** Chunk rows are read synchronously: no load, the first hit to read them whole keeps them. */
    let synchronous = false
    const startLoad = (): SharedLoad | undefined => {
      if (synchronous || !mayKeep()) return undefined
      const source = entry.readBody()
      if (!(Symbol.asyncIterator in source)) {
        synchronous = true
        return undefined
      }
      // it stays the entry's keeper once loaded: when the tier lets the entry go, it drops its body
      const started: SharedLoad = new SharedLoad(entry.sizeBytes, source, {
        loaded: (body) => this.#warmed(key, readBody, body),
        failed: () => {
          if (this.#keepers.get(entry.id) === started) this.#keepers.delete(entry.id)
          load = undefined
        },
      })
      this.#keepers.set(entry.id, started)
      return started
    }
    const readBody = (): Iterable<Buffer> | AsyncIterable<Buffer> => {
      // a hit that looked the entry up before the tier swapped in its body reads that body
      const loaded = load?.body
      if (loaded) return [loaded]
      // the load's reader is opened first: one that cannot be opened throws with nothing else open
      load ??= startLoad()
      const own = entry.readBody()
      if (!(Symbol.asyncIterator in own)) return new KeepingReader(entry.sizeBytes, keeper).read(own)
      return load?.follow(own) ?? own
    }
    return { ...entry, readBody }
  }

  /**
   * Where `key`'s entry whose body is not in memory yet, read by `readBody` (made for it by
   * #keepOnceRead, kept when its metadata is updated), is among those the tier holds; -1 if it is not.
   */
  #indexOfCold(key: string, readBody: StoredEntry['readBody']): number {
    return this.#byKey.get(key)?.entries.findIndex((entry) => entry.readBody === readBody) ?? -1
  }

  /** Swaps in the body read whole, if the tier still holds the entry (nothing wrote meanwhile). */
  #warmed(key: string, readBody: StoredEntry['readBody'], body: Buffer): void {
    const hot = this.#byKey.get(key)
    const index = this.#indexOfCold(key, readBody)
    const held = hot?.entries[index]
    if (hot === undefined || held === undefined) return
    const warm = Object.freeze({ ...held, body, readBody: () => [body] })
    hot.entries = hot.entries.map((entry, at) => (at === index ? warm : entry))
  }

  /**
   * Entry `id` of `key` now has the metadata `metaJson` in the file (a 304 freshened it): the tier keeps
   * it with that metadata, read back as a lookup would, and its body as it was (in memory, or still
   * read by the same reader: a load under way goes on). A key without that entry is forgotten.
   */
  updated(key: string, id: StoredEntry['id'], metaJson: string): void {
    const hot = this.#byKey.get(key)
    const index = hot?.entries.findIndex((entry) => entry.id === id) ?? -1
    const kept = hot?.entries[index]
    if (hot === undefined || kept === undefined) {
      this.forget(key)
      return
    }
    const { sizeBytes, body, readBody, readRange } = kept
    const meta = JSON.parse(metaJson) as EntryMeta
    const fields = { ...meta, id, sizeBytes, readBody }
    const entry = deepFreeze(body ? { ...fields, body } : readRange ? { ...fields, readRange } : fields)
    hot.entries = hot.entries.map((other, at) => (at === index ? entry : other))
  }

  forget(key: string): void {
    const hot = this.#byKey.get(key)
    if (hot === undefined) return
    this.#byKey.delete(key)
    for (const entry of hot.entries) {
      this.#keyById.delete(entry.id)
      this.#keepers.get(entry.id)?.stopKeeping()
      this.#keepers.delete(entry.id)
    }
    this.#bytes -= hot.sizeBytes
  }

  clear(): void {
    this.#byKey.clear()
    this.#keyById.clear()
    for (const keeping of [...this.#keepers.values()]) keeping.stopKeeping()
    this.#keepers.clear()
    this.#bytes = 0
  }
}
