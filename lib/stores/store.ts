import type { StoredResponse } from '../policy/types.js'

/** Something that may be a promise: memory and SQLite stores answer synchronously, Redis does not. */
export type MaybePromise<T> = T | Promise<T>

/** What a store keeps about one variant, besides the body. */
export interface EntryMeta extends StoredResponse {
  /** Canonical string of the selecting request headers (RFC 9111 §4.1); '' without Vary. */
  varyKey: string
  /** Epoch ms after which the entry has no use at all and may be dropped (0 = unknown). */
  deleteAtMs: number
  /**
   * Stored (or last freshened) by a shared cache. A shared cache uses only such entries: never what a
   * private cache (`shared: false`) on the same store kept, nor entries of an older version that did
   * not say.
   */
  sharedCache?: true
  /**
   * Stored by a shared cache for a request with Authorization (RFC 9111 §3.5): a tag of those credentials
   * (lib/credentials.ts), kept however the entry is freshened. A request with others is never served it
   * without the policy's check: not after waiting on a flight, nor under its `cache.ttl`.
   */
  authorized?: string
  /**
   * Which response the body is, unique among every process's (a random tag per process and a count):
   * a reader of a download finds its own entry by it, never another process's response committed in
   * its place. Kept however the entry is freshened.
   */
  writeId?: string
}

/**
 * Variants of one key a store keeps at most: committing another drops the oldest committed. An origin
 * varying on a header its clients set at will (an id, User-Agent) then cannot make every lookup of the
 * URL read thousands of variants.
 */
export const MAX_VARIANTS_PER_KEY = 32

/** One stored, complete variant. */
export interface StoredEntry extends EntryMeta {
  /** Store-specific id, used by `update`. */
  id: string | number
  /** Body length in bytes. */
  sizeBytes: number
  /** The whole body, when the store has it in one piece already (fast path for small bodies). */
  body?: Buffer
  /**
   * Reads the body chunk by chunk, never holding it whole. Throws if the body disappears
   * mid-read (replaced or evicted meanwhile): a body is never ended short.
   */
  readBody(): Iterable<Buffer> | AsyncIterable<Buffer>
  /**
   * Optional, for a Range: reads exactly the bytes from `startBytes` up to `endBytes` (exclusive),
   * as readBody() would. Without it, a range is cut out of readBody(), read from the body's start.
   */
  readRange?(startBytes: number, endBytes: number): Iterable<Buffer> | AsyncIterable<Buffer>
}

/** Receives one body as it streams; nothing is visible until `commit()` resolves. */
export interface EntryWriter {
  /**
   * Adds a chunk; the store may keep the Buffer, so the caller must not change it afterwards.
   * May refuse silently (e.g. past `maxEntryBytes`): `commit()` then stores nothing.
   */
  write(chunk: Buffer): MaybePromise<void>
  /** Makes the entry visible, atomically replacing the variant with the same key and varyKey. */
  commit(): MaybePromise<void>
  /**
   * Optional: like `commit()`, but the store may group it with other commits made at about the same
   * time (one transaction for many responses ending together). Resolved once the entry is visible.
   */
  commitSoon?(): Promise<void>
  /** Drops everything written; never throws. */
  abort(): void
  /** Optional: true once the writer refused the entry (past `maxEntryBytes`): `commit()` will store nothing. */
  readonly refused?: boolean
}

/** The store contract every store implements. Keys are primary cache keys (see lib/key.ts). */
export interface CacheStore {
  /**
   * Every complete variant stored under `key`, newest (last committed) first. Callers must not
   * change what is returned: a store may hand the same frozen objects to every hit.
   */
  get(key: string): MaybePromise<StoredEntry[]>
  /** Starts writing a new variant; `undefined` when the store will not take it. */
  put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined
  /**
   * Replaces the metadata of a stored entry (RFC 9111 §4.3.4 freshening); body unchanged.
   * Store-specific fields of a StoredEntry passed as `meta` are ignored.
   */
  update(key: string, id: StoredEntry['id'], meta: EntryMeta): MaybePromise<void>
  /** Removes every variant under `key` (RFC 9111 §4.4 invalidation), cancelling writes in progress. */
  delete(key: string): MaybePromise<void>
  /** Releases resources; stored entries stay. */
  close(): MaybePromise<void>
}

/** Whether a store call answered with a promise (else it answered synchronously). */
export function isPromise<T>(answer: MaybePromise<T>): answer is Promise<T> {
  return typeof (answer as Promise<T> | null | undefined)?.then === 'function'
}

/** `next` applied to a store call's answer: at once when it came synchronously, else once it resolves. */
export function afterAnswer<T, R>(
  answer: MaybePromise<T>,
  next: (value: T) => MaybePromise<R>,
): MaybePromise<R> {
  return isPromise(answer) ? answer.then(next) : next(answer)
}

/** An entry as a hit needs it: an object with a body length (a safe integer, 0 or more), a reader, a Buffer if any body. */
function isEntry(entry: unknown): boolean {
  if (typeof entry !== 'object' || entry === null) return false
  const { sizeBytes, readBody, body } = entry as Partial<StoredEntry>
  return (
    Number.isSafeInteger(sizeBytes) &&
    (sizeBytes as number) >= 0 &&
    typeof readBody === 'function' &&
    (body === undefined || Buffer.isBuffer(body))
  )
}

function isEntryList(found: unknown): found is StoredEntry[] {
  return Array.isArray(found) && found.every(isEntry)
}

/** A get whose answer is no list of entries (a custom store's slip): it counts as a failed get. */
function notAList(found: unknown): TypeError {
  const what = Array.isArray(found) ? 'a list with something that is no entry in it' : String(found)
  return new TypeError(`store get() must give a list of entries, gave ${what}`)
}

/**
 * `pick` applied to the store's entries for `key`: at once, or once its promise settles. An answer that
 * is no list of entries (one without a body length or reader: its Content-Length would be made up)
 * throws (or rejects), as a failing get does.
 */
export function withEntries<T>(
  store: CacheStore,
  key: string,
  pick: (entries: StoredEntry[]) => T,
): MaybePromise<T> {
  const found = store.get(key) as MaybePromise<unknown>
  // a hit's lookup: no function made for it
  if (isEntryList(found)) return pick(found)
  return afterAnswer(found, (entries) => {
    if (!isEntryList(entries)) throw notAList(entries)
    return pick(entries)
  })
}
