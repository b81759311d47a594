import { deepFreeze } from './freeze.js'
import type { StoredEntry } from './store.js'

interface HotKey {
  entries: StoredEntry[]
  sizeBytes: number
  /** When a use was last recorded in the file (epoch ms), for its eviction order. */
  touchedMs: number
}

/** A hit from memory; `touch` when its use is due to be recorded in the file again. */
export interface HotHit {
  entries: StoredEntry[]
  touch: boolean
}

/** Rough bytes one entry's metadata holds in memory (a header block is a few hundred bytes). */
const META_BYTES_ESTIMATE = 1024

function sizeOf(entries: StoredEntry[]): number {
  return entries.reduce((total, entry) => total + entry.sizeBytes + META_BYTES_ESTIMATE, 0)
}

/**
 * This process's recently read small entries, in front of SQLite, least recently used first out.
 * Another process's commit changes the database's data_version, which empties it; this process's own
 * writes forget the key they touch. Only entries whose bodies are inline (already in memory) are kept.
 */
export class HotTier {
  readonly #byKey = new Map<string, HotKey>()
  readonly #keyById = new Map<StoredEntry['id'], string>()
  readonly #maxBytes: number
  readonly #readDataVersion: () => number
  #bytes = 0
  #dataVersion: number

  readonly #touchIntervalMs: number

  constructor(maxBytes: number, touchIntervalMs: number, readDataVersion: () => number) {
    this.#touchIntervalMs = touchIntervalMs
    this.#maxBytes = maxBytes
    this.#readDataVersion = readDataVersion
    this.#dataVersion = readDataVersion()
  }

  /** The entries kept for `key`, if no other process wrote since they were read. */
  get(key: string, nowMs: number): HotHit | undefined {
    const version = this.#readDataVersion()
    if (version !== this.#dataVersion) {
      this.clear()
      this.#dataVersion = version
      return undefined
    }
    const hot = this.#byKey.get(key)
    if (hot === undefined) return undefined
    this.#byKey.delete(key)
    this.#byKey.set(key, hot)
    return { entries: hot.entries, touch: nowMs - hot.touchedMs >= this.#touchIntervalMs }
  }

  /** Notes that the uses of `key`'s entries were recorded in the file at `nowMs`. */
  touched(key: string, nowMs: number): void {
    const hot = this.#byKey.get(key)
    if (hot) hot.touchedMs = nowMs
  }

  /** Forgets the key whose entry left the file (replaced, evicted, deleted, swept). */
  forgetEntry(id: StoredEntry['id']): void {
    const key = this.#keyById.get(id)
    if (key !== undefined) this.forget(key)
  }

  /** Keeps what SQLite returned for `key` when every body is inline and it fits. */
  remember(key: string, entries: StoredEntry[], touchedMs: number): void {
    if (entries.length === 0 || !entries.every((entry) => entry.body !== undefined)) return
    const sizeBytes = sizeOf(entries)
    if (sizeBytes > this.#maxBytes / 8) return
    this.forget(key)
    for (const entry of entries) {
      deepFreeze(entry)
      this.#keyById.set(entry.id, key)
    }
    this.#byKey.set(key, { entries, sizeBytes, touchedMs })
    this.#bytes += sizeBytes
    for (const oldest of this.#byKey.keys()) {
      if (this.#bytes <= this.#maxBytes) break
      this.forget(oldest)
    }
  }

  forget(key: string): void {
    const hot = this.#byKey.get(key)
    if (hot === undefined) return
    this.#byKey.delete(key)
    for (const entry of hot.entries) this.#keyById.delete(entry.id)
    this.#bytes -= hot.sizeBytes
  }

  clear(): void {
    this.#byKey.clear()
    this.#keyById.clear()
    this.#bytes = 0
  }
}
