/**
 * toUndiciStore: any store of this package as the `store` of undici's own cache interceptor
 * (`interceptors.cache({ store })`), so a user of undici's built-in cache can switch only the store.
 *
 * undici keeps fields our EntryMeta has no place for (method, vary as sent, etag, cache-control
 * directives, cachedAt, staleAt). They travel JSON-encoded in a reserved response header,
 * UNDICI_VALUE_HEADER, which every store keeps as it keeps any header and which the adapter removes
 * on the way out; deleteAt maps onto deleteAtMs, so the stores' expiry applies. Keys are namespaced
 * ('undici ' + origin + path), so undici's entries and this package's own cache never meet.
 */
import { Readable, Writable } from 'node:stream'
import type { interceptors } from 'undici'
import { asError, reportStoreError } from '../diagnostics.js'
import { entryBody } from '../handlers/serve.js'
import { LruMap } from './lru-map.js'
import type { CacheStore, EntryMeta, MaybePromise, StoredEntry } from './store.js'
import { metaOnly } from './writers.js'

/** undici's CacheStore interface: the `store` option of `interceptors.cache()`. */
export type UndiciCacheStore = NonNullable<NonNullable<Parameters<typeof interceptors.cache>[0]>['store']>
type UndiciCacheKey = Parameters<UndiciCacheStore['get']>[0]
type UndiciCacheValue = Parameters<UndiciCacheStore['createWriteStream']>[1]
type UndiciGetResult = NonNullable<Awaited<ReturnType<UndiciCacheStore['get']>>>
type UndiciVary = NonNullable<UndiciCacheValue['vary']>
type UndiciHeaders = UndiciCacheValue['headers']

/** The reserved response header holding undici's own fields of a stored value. */
export const UNDICI_VALUE_HEADER = 'x-undici-cache-value'
const KEY_PREFIX = 'undici '

/** What undici needs back that EntryMeta does not hold. */
interface UndiciFields {
  method: string
  vary?: UndiciVary
  etag?: string
  cacheControlDirectives?: UndiciGetResult['cacheControlDirectives']
  cachedAt: number
  staleAt: number
}

/**
 * Wraps a store for undici's cache interceptor. Store failures never fail a request: a failed get is
 * a miss, a failed delete is ignored, a failed write drops the entry; each is reported on
 * `storeErrorChannel` (and as a process warning once per store).
 */
export function toUndiciStore(store: CacheStore): UndiciCacheStore {
  const reads = new BodyReads(store)
  const lookups = new LookupTimes()
  return {
    get: (key) => {
      lookups.looked(storeKey(key))
      return lookup(store, key, reads)
    },
    createWriteStream: (key, value) => {
      const keyed = storeKey(key)
      const sentMs = lookups.lastMs(keyed)
      // RFC 9111 §4.4: a response to a request sent before an invalidation may predate the write
      if (reads.invalidatedSince(keyed, sentMs)) return undefined
      const stream = openWriteStream(store, key, value, sentMs)
      if (stream) reads.writing(keyed)
      return stream
    },
    delete: (key) =>
      SAFE_METHODS.has(key.method) ? reads.removeWhenRead(storeKey(key)) : reads.invalidate(storeKey(key)),
  }
}

/** Keys whose last lookup time is kept: the most recently looked up. */
const MAX_LOOKUPS_KEPT = 10_000

/**
 * When undici last looked each key up: it does so as a request starts, and tells a store nothing else
 * of when the request was sent. A write counts from then (another request's later lookup makes it
 * count later), so a response to a request sent before an invalidation is refused, here and by a
 * SqliteStore shared with other processes, when no request of the URL started since.
 */
class LookupTimes {
  readonly #lastMs = new LruMap<string, number>(MAX_LOOKUPS_KEPT)

  looked(storeKey: string): void {
    this.#lastMs.set(storeKey, Date.now())
  }

  /** The last lookup of the key, or now when none is known. */
  lastMs(storeKey: string): number {
    return this.#lastMs.get(storeKey) ?? Date.now()
  }
}

/** RFC 9110 §9.2.1: undici deletes under an unsafe method's key only to invalidate (RFC 9111 §4.4). */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

/** A delete waits at most this long for the body streams handed out under its key. */
const DELETE_WAIT_MAX_MS = 30_000

/**
 * The body streams handed out per key. undici deletes an entry on a 304 that carries Cache-Control
 * and then serves the body it looked up (nodejs/undici#5505): a body read from a file, chunk rows or
 * Redis would be gone. So a delete waits until those streams are done (at most DELETE_WAIT_MAX_MS).
 * Meanwhile what it removes is out of lookups: this adapter's at once; every reader of the store's
 * once the entries' metadata says they expired then (written at once, bodies left as they are). A
 * write started under the key meanwhile makes the wait's delete unneeded (it would remove that write),
 * unless the delete is an invalidation's (which refuses such writes). A delete still waiting when the
 * process exits is made then (at once for a synchronous store).
 */
class BodyReads {
  readonly #store: CacheStore
  readonly #open = new Map<string, Set<Readable>>()
  /** The deletes waiting for those streams, by key: each one's DELETE_WAIT_MAX_MS timer. */
  readonly #waiting = new Map<string, NodeJS.Timeout>()
  /** The keys whose waiting delete is an invalidation's: no write under the key makes it unneeded. */
  readonly #waitingInvalidations = new Set<string>()
  /** Keys whose waiting delete (not an invalidation's) a write started since makes unneeded. */
  readonly #superseded = new Set<string>()
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

  /** A write under `key` started: a waiting delete after a 304 would remove it (what it was for has expired). */
  writing(key: string): void {
    if (this.#waiting.has(key)) this.#superseded.add(key)
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
   * The entries stored under `key` for requests sent by `deletedMs` expire then: every reader of the
   * store passes them over (as a delete would), while their bodies stay readable.
   */
  async #expire(key: string, deletedMs: number): Promise<void> {
    try {
      for (const entry of await this.#store.get(key)) {
        if (entry.requestTimeMs <= deletedMs && entry.deleteAtMs > deletedMs)
          await this.#store.update(key, entry.id, { ...metaOnly(entry), deleteAtMs: deletedMs })
      }
    } catch (error) {
      reportStoreError(this.#store, 'update', error)
    }
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
    else void this.#expire(key, deletedMs)
    if (this.#waiting.has(key)) return Promise.resolve()
    this.#waiting.set(key, setTimeout(() => this.#removeNow(key), DELETE_WAIT_MAX_MS).unref())
    holdUntilExit(this)
    return Promise.resolve()
  }

  /** The process is exiting: the deletes still waiting are made now. */
  removeWaiting(): void {
    for (const key of [...this.#waiting.keys()]) this.#removeNow(key)
  }

  #removeNow(key: string): void {
    const unneeded = this.#superseded.has(key) && !this.#waitingInvalidations.has(key)
    this.#stopWaiting(key)
    if (!unneeded) remove(this.#store, key)
  }

  #stopWaiting(key: string): void {
    clearTimeout(this.#waiting.get(key))
    this.#waiting.delete(key)
    this.#waitingInvalidations.delete(key)
    this.#superseded.delete(key)
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

/** Every method and variant of a URL share one store key; the variant carries the method. */
function storeKey(key: UndiciCacheKey): string {
  return `${KEY_PREFIX}${key.origin}${key.path}`
}

/** The newest variant for the key's method whose Vary values match the request, if still of use. */
async function lookup(
  store: CacheStore,
  key: UndiciCacheKey,
  reads: BodyReads,
): Promise<UndiciGetResult | undefined> {
  const nowMs = Date.now()
  try {
    for (const entry of await store.get(storeKey(key))) {
      const fields = undiciFields(entry)
      if (fields === undefined || fields.method !== key.method || entry.deleteAtMs <= nowMs) continue
      if (reads.deletedEntry(storeKey(key), entry)) continue
      if (varyMatches(fields.vary, key.headers)) return toGetResult(entry, fields, reads, storeKey(key))
    }
  } catch (error) {
    // a body that cannot be read (its file gone) makes a miss too
    reportStoreError(store, 'get', error)
  }
  return undefined
}

function undiciFields(entry: StoredEntry): UndiciFields | undefined {
  const encoded = entry.headers[UNDICI_VALUE_HEADER]
  if (typeof encoded !== 'string') return undefined
  try {
    return JSON.parse(encoded) as UndiciFields
  } catch {
    return undefined
  }
}

/** undici's rule: each Vary field of the stored value equals the request's (absent matches null). */
function varyMatches(vary: UndiciVary | undefined, headers: UndiciCacheKey['headers']): boolean {
  for (const [name, stored] of Object.entries(vary ?? {})) {
    const sent = headers?.[name] ?? null
    if (JSON.stringify(sent) !== JSON.stringify(stored)) return false
  }
  return true
}

function toGetResult(
  entry: StoredEntry,
  fields: UndiciFields,
  reads: BodyReads,
  key: string,
): UndiciGetResult {
  const headers: UndiciHeaders = {}
  for (const [name, value] of Object.entries(entry.headers)) {
    if (value !== undefined && name !== UNDICI_VALUE_HEADER) headers[name] = value
  }
  return {
    statusCode: entry.statusCode,
    statusMessage: entry.statusMessage,
    headers,
    vary: fields.vary,
    etag: fields.etag,
    cacheControlDirectives: fields.cacheControlDirectives ?? {},
    cachedAt: fields.cachedAt,
    staleAt: fields.staleAt,
    deleteAt: entry.deleteAtMs,
    body: bodyOf(entry, reads, key),
  }
}

/**
 * The stored body: the chunks in an array when the store has it whole, else a stream read on demand.
 * One of another length than the entry says throws, or fails its stream (never ends short or long).
 */
function bodyOf(entry: StoredEntry, reads: BodyReads, key: string): Buffer[] | Readable {
  const body = entryBody(entry)
  if (entry.body !== undefined) return body as Buffer[]
  return reads.track(key, Readable.from(body, { objectMode: false }))
}

function toMeta(key: UndiciCacheKey, value: UndiciCacheValue, requestTimeMs: number): EntryMeta {
  const fields: UndiciFields = {
    method: key.method,
    vary: value.vary,
    etag: value.etag,
    cacheControlDirectives: value.cacheControlDirectives,
    cachedAt: value.cachedAt,
    staleAt: value.staleAt,
  }
  const varyValues: Record<string, string | null> = {}
  for (const [name, sent] of Object.entries(value.vary ?? {})) {
    varyValues[name] = Array.isArray(sent) ? sent.join(', ') : sent
  }
  const byName = Object.entries(value.vary ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return {
    statusCode: value.statusCode,
    statusMessage: value.statusMessage,
    headers: { ...value.headers, [UNDICI_VALUE_HEADER]: JSON.stringify(fields) },
    // not cachedAt: that is the response's birth (its age before it arrived), not when it was asked for
    requestTimeMs,
    responseTimeMs: value.cachedAt,
    varyValues,
    varyKey: JSON.stringify([key.method, byName]),
    deleteAtMs: value.deleteAt,
  }
}

function contentLength(headers: UndiciHeaders): number | undefined {
  const length = Number(headers['content-length'])
  return typeof headers['content-length'] === 'string' && Number.isSafeInteger(length) ? length : undefined
}

/** A Writable feeding a store writer: commit on end, abort on destroy; undefined if the store declines. */
function openWriteStream(
  store: CacheStore,
  key: UndiciCacheKey,
  value: UndiciCacheValue,
  requestTimeMs: number,
): Writable | undefined {
  let writer: ReturnType<CacheStore['put']>
  try {
    writer = store.put(storeKey(key), toMeta(key, value, requestTimeMs), contentLength(value.headers))
  } catch (error) {
    reportStoreError(store, 'put', error)
    return undefined
  }
  if (writer === undefined) return undefined
  const entryWriter = writer
  return new Writable({
    write: (chunk: Buffer, _encoding, callback) =>
      settle(store, 'write', () => entryWriter.write(chunk), callback),
    final: (callback) => settle(store, 'commit', () => entryWriter.commit(), callback),
    destroy: (error, callback) => {
      entryWriter.abort()
      callback(error)
    },
  })
}

/** Runs a store step and calls back when it is done; a failure is reported and errors the stream. */
function settle(
  store: CacheStore,
  operation: string,
  step: () => MaybePromise<void>,
  callback: (error?: Error | null) => void,
): void {
  const fail = (error: unknown) => {
    reportStoreError(store, operation, error)
    callback(asError(error))
  }
  try {
    const result = step()
    if (result === undefined) callback()
    else result.then(() => callback(), fail)
  } catch (error) {
    fail(error)
  }
}

async function remove(store: CacheStore, key: string): Promise<void> {
  try {
    await store.delete(key)
  } catch (error) {
    reportStoreError(store, 'delete', error)
  }
}
