/**
 * The undici fields toUndiciStore keeps in a reserved header, and the deletes it holds while bodies
 * handed out under a key are still being read (see BodyReads).
 */
import type { Readable } from 'node:stream'
import { reportStoreError } from '../diagnostics.js'
import { LruMap } from './lru-map.js'
import { type CacheStore, isPromise, type MaybePromise, type StoredEntry, withEntries } from './store.js'
import type { UndiciGetResult, UndiciVary } from './undici-store-adapter.js'
import { metaOnly } from './writers.js'

/** The reserved response header holding undici's own fields of a stored value. */
export const UNDICI_VALUE_HEADER = 'x-undici-cache-value'

/** What undici needs back that EntryMeta does not hold. */
export interface UndiciFields {
  method: string
  vary?: UndiciVary
  etag?: string
  cacheControlDirectives?: UndiciGetResult['cacheControlDirectives']
  cachedAt: number
  staleAt: number
  /** Set when undici deleted the entry after a 304 while its body was still being read (see BodyReads). */
  deletedAtMs?: number
}

/** Keys whose last lookup time is kept: the most recently looked up. */
export const MAX_LOOKUPS_KEPT = 10_000

/** A delete waits at most this long for the body streams handed out under its key. */
const DELETE_WAIT_MAX_MS = 30_000

/**
 * The body streams handed out per key. undici deletes an entry on a 304 that carries Cache-Control
 * and then serves the body it looked up (nodejs/undici#5505): a body read from a file, chunk rows or
 * Redis would be gone. So a delete waits until those streams are done (at most DELETE_WAIT_MAX_MS).
 * Meanwhile what it removes is out of lookups: this adapter's at once; every adapter's once the
 * entries are marked deleted (#markDeleted: bodies and expiry left as they are). A 304's waiting delete
 * is dropped when an entry committed since is under the key (it would remove it), unless a mark failed;
 * an invalidation's is always made (it refuses such writes). A delete still waiting when the process
 * exits is made then (at once for a synchronous store).
 */
export class BodyReads {
  readonly #store: CacheStore
  readonly #open = new Map<string, Set<Readable>>()
  /** The deletes waiting for those streams, by key: each one's DELETE_WAIT_MAX_MS timer. */
  readonly #waiting = new Map<string, NodeJS.Timeout>()
  /** The keys whose waiting delete is an invalidation's: no write under the key makes it unneeded. */
  readonly #waitingInvalidations = new Set<string>()
  /**
   * The ids of the entries a waiting delete (after a 304) is for: any other under the key is newer.
   * null when they could not be read: the delete is then for whatever is there.
   */
  readonly #deletedIds = new Map<string, ReadonlySet<StoredEntry['id']> | null>()
  /** When each of the last invalidated keys was invalidated (epoch ms). */
  readonly #invalidatedMs = new LruMap<string, number>(MAX_LOOKUPS_KEPT)
  /** When each of the last keys deleted (invalidated, or after a 304) was: what was stored before is gone. */
  readonly #deletedMs = new LruMap<string, number>(MAX_LOOKUPS_KEPT)
  /** Keys invalidated in this turn: undici goes on to delete them under each safe method's key too. */
  readonly #invalidatedNow = new Set<string>()

  constructor(store: CacheStore) {
    this.#store = store
  }

  track(key: string, body: Readable): Readable {
    const open = this.#open.get(key) ?? new Set()
    this.#open.set(key, open)
    open.add(body)
    body.once('close', () => {
      open.delete(body)
      if (open.size > 0) return
      this.#open.delete(key)
      if (this.#waiting.has(key)) this.#removeNow(key)
    })
    return body
  }

  /** RFC 9111 §4.4: what is stored under `key` by now is not served again. */
  invalidate(key: string): Promise<void> {
    if (this.#invalidatedNow.size === 0) queueMicrotask(() => this.#invalidatedNow.clear())
    this.#invalidatedNow.add(key)
    this.#invalidatedMs.set(key, Date.now())
    return this.#removeWhenRead(key, true)
  }

  /** An entry stored under `key` for a request sent before its last delete (not in the same millisecond). */
  deletedEntry(key: string, entry: StoredEntry): boolean {
    return entry.requestTimeMs < (this.#deletedMs.get(key) ?? 0)
  }

  /**
   * The entries stored under `key` when its delete was asked for are marked deleted then (in the fields
   * the adapter keeps for undici): every adapter on the store passes them over, as after a delete, while
   * the store keeps them and their bodies as they were (no sweep or expiry removes them early). Their
   * ids are kept: the held delete is dropped only for an entry that is not one of them.
   */
  #markDeleted(key: string, deletedMs: number): void {
    const ids = new Set<StoredEntry['id']>()
    this.#deletedIds.set(key, ids)
    const unknown = (error: unknown) => {
      reportStoreError(this.#store, 'get', error)
      // which entries the delete is for is not known: it removes whatever is there
      this.#unmarked(key, ids)
    }
    const failed = (error: unknown) => reportStoreError(this.#store, 'update', error)
    let marking: MaybePromise<void>
    try {
      marking = withEntries(this.#store, key, (entries) => {
        this.#mark(key, entries, ids, deletedMs).catch(failed)
      })
    } catch (error) {
      unknown(error)
      return
    }
    if (isPromise(marking)) marking.catch(unknown)
  }

  /** Notes the entries' ids at once (a synchronous store's before anything else happens), then marks them. */
  async #mark(key: string, entries: StoredEntry[], ids: Set<StoredEntry['id']>, deletedMs: number) {
    for (const entry of entries) ids.add(entry.id)
    try {
      for (const entry of entries) {
        const fields = undiciFields(entry)
        if (fields === undefined || fields.deletedAtMs !== undefined) continue
        const marked = JSON.stringify({ ...fields, deletedAtMs: deletedMs })
        const headers = { ...entry.headers, [UNDICI_VALUE_HEADER]: marked }
        await this.#store.update(key, entry.id, { ...metaOnly(entry), headers })
      }
      // a store may refuse an update without a word (SqliteStore near maxBytes): looked at again
      const after = await withEntries(this.#store, key, (entries) => entries)
      if (after.some((entry) => ids.has(entry.id) && undiciFields(entry)?.deletedAtMs === undefined))
        this.#unmarked(key, ids)
    } catch (error) {
      this.#unmarked(key, ids)
      throw error
    }
  }

  /** An entry the delete is for was left unmarked: others may serve it, so the delete removes whatever is there. */
  #unmarked(key: string, ids: ReadonlySet<StoredEntry['id']>): void {
    if (this.#deletedIds.get(key) === ids) this.#deletedIds.set(key, null)
  }

  /** Whether `key` was invalidated after `sentMs` (not in the same millisecond, as SqliteStore counts). */
  invalidatedSince(key: string, sentMs: number): boolean {
    const invalidatedMs = this.#invalidatedMs.get(key)
    return invalidatedMs !== undefined && invalidatedMs > sentMs
  }

  removeWhenRead(key: string): Promise<void> {
    // the safe-method deletes of an invalidation made this turn: that one is under way
    if (this.#invalidatedNow.has(key)) return Promise.resolve()
    return this.#removeWhenRead(key, false)
  }

  /** A delete already waiting keeps its deadline, and stays an invalidation's once it is one. */
  #removeWhenRead(key: string, invalidation: boolean): Promise<void> {
    const deletedMs = Date.now()
    this.#deletedMs.set(key, deletedMs)
    if (!this.#open.has(key)) {
      this.#stopWaiting(key)
      return remove(this.#store, key)
    }
    if (invalidation) this.#waitingInvalidations.add(key)
    else this.#markDeleted(key, deletedMs)
    if (this.#waiting.has(key)) return Promise.resolve()
    this.#waiting.set(key, setTimeout(() => this.#removeNow(key), DELETE_WAIT_MAX_MS).unref())
    holdUntilExit(this)
    return Promise.resolve()
  }

  /** The process is exiting: the deletes still waiting are made now. */
  removeWaiting(): void {
    for (const key of [...this.#waiting.keys()]) this.#removeNow(key)
  }

  /**
   * Makes the delete that waited. After a 304 (not an invalidation) it is unneeded once the key holds
   * an entry that was not there when the delete was asked for (a newer response, committed by this or
   * another adapter or process): it would remove that.
   */
  #removeNow(key: string): void {
    const invalidation = this.#waitingInvalidations.has(key)
    const ids = this.#deletedIds.get(key) ?? null
    this.#stopWaiting(key)
    if (invalidation || ids === null) void remove(this.#store, key)
    else removeUnlessRewritten(this.#store, key, ids)
  }

  #stopWaiting(key: string): void {
    clearTimeout(this.#waiting.get(key))
    this.#waiting.delete(key)
    this.#waitingInvalidations.delete(key)
    this.#deletedIds.delete(key)
    if (this.#waiting.size === 0) waitingDeletes.delete(this)
  }
}

/** The adapters with deletes waiting for bodies to be read: made when the process exits. */
const waitingDeletes = new Set<BodyReads>()
let exitHookInstalled = false

function holdUntilExit(reads: BodyReads): void {
  waitingDeletes.add(reads)
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const waiting of [...waitingDeletes]) waiting.removeWaiting()
  })
}

export function undiciFields(entry: StoredEntry): UndiciFields | undefined {
  const encoded = entry.headers[UNDICI_VALUE_HEADER]
  if (typeof encoded !== 'string') return undefined
  try {
    return JSON.parse(encoded) as UndiciFields
  } catch {
    return undefined
  }
}

/**
 * Deletes `key` unless it holds an entry whose id is not in `ids` (written since the delete was asked
 * for); at once for a synchronous store (the process may be exiting).
 */
function removeUnlessRewritten(store: CacheStore, key: string, ids: ReadonlySet<StoredEntry['id']>): void {
  const removeUnlessNewer = (entries: StoredEntry[]) => {
    if (entries.every((entry) => ids.has(entry.id))) void remove(store, key)
  }
  try {
    const decided = withEntries(store, key, removeUnlessNewer)
    if (isPromise(decided)) decided.catch((error: unknown) => reportStoreError(store, 'get', error))
  } catch (error) {
    reportStoreError(store, 'get', error)
  }
}

async function remove(store: CacheStore, key: string): Promise<void> {
  try {
    await store.delete(key)
  } catch (error) {
    reportStoreError(store, 'delete', error)
  }
}
