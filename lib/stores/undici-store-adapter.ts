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
import {
  BodyReads,
  MAX_LOOKUPS_KEPT,
  UNDICI_VALUE_HEADER,
  type UndiciFields,
  undiciFields,
} from './undici-adapter-reads.js'

/** undici's CacheStore interface: the `store` option of `interceptors.cache()`. */
export type UndiciCacheStore = NonNullable<NonNullable<Parameters<typeof interceptors.cache>[0]>['store']>
type UndiciCacheKey = Parameters<UndiciCacheStore['get']>[0]
type UndiciCacheValue = Parameters<UndiciCacheStore['createWriteStream']>[1]
export type UndiciGetResult = NonNullable<Awaited<ReturnType<UndiciCacheStore['get']>>>
export type UndiciVary = NonNullable<UndiciCacheValue['vary']>
type UndiciHeaders = UndiciCacheValue['headers']

export { UNDICI_VALUE_HEADER }

const KEY_PREFIX = 'undici '

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
      return openWriteStream(store, key, value, sentMs)
    },
    delete: (key) =>
      SAFE_METHODS.has(key.method) ? reads.removeWhenRead(storeKey(key)) : reads.invalidate(storeKey(key)),
  }
}

/**
 * When undici last looked each key up: it does so as a request starts, and tells a store nothing else
 * of when the request was sent. A write counts from then (another request's later lookup makes it
 * count later), so a response to a request sent before an invalidation is refused, here and by a
 * SqliteStore shared with other processes, when no request of the URL started since.
 */
class LookupTimes {
  readonly #lastMs = new LruMap<string, number>(MAX_LOOKUPS_KEPT)
  /** Some key's lookup was forgotten (more keys looked up since than are kept). */
  #forgotten = false

  looked(storeKey: string): void {
    if (this.#lastMs.size >= MAX_LOOKUPS_KEPT && this.#lastMs.get(storeKey) === undefined)
      this.#forgotten = true
    this.#lastMs.set(storeKey, Date.now())
  }

  /**
   * The last lookup of the key. One that may have been forgotten counts as sent before any
   * invalidation (a write for it is refused after one); none ever made (no key forgotten) as now.
   */
  lastMs(storeKey: string): number {
    return this.#lastMs.get(storeKey) ?? (this.#forgotten ? 0 : Date.now())
  }
}

/**
 * An entry this close to its deleteAt is not handed to undici (see lookup): undici looks at deleteAt a
 * few ms after the lookup answers; short-lived entries (deleteAt 2 s after max-age=1) stay usable.
 */
const DELETE_AT_MARGIN_MS = 100

/** Bodies the store does not hold whole are read whole at lookup up to this size (see bodyOf). */
const WHOLE_READ_MAX_BYTES = 1024 * 1024

/** RFC 9110 §9.2.1: undici deletes under an unsafe method's key only to invalidate (RFC 9111 §4.4). */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

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
  try {
    const entries = await store.get(storeKey(key))
    const nowMs = Date.now()
    for (const entry of entries) {
      const fields = undiciFields(entry)
      if (fields === undefined || fields.deletedAtMs !== undefined) continue
      if (fields.method !== key.method || entry.deleteAtMs <= nowMs) continue
      if (reads.deletedEntry(storeKey(key), entry) || !varyMatches(fields.vary, key.headers)) continue
      // the newest match, but about to be deleted: a miss (an older match is not the one to use, RFC 9111
      // §4). undici drops a body unclosed when deleteAt passes as it looks: it would hold the key's deletes
      return entry.deleteAtMs <= nowMs + DELETE_AT_MARGIN_MS
        ? undefined
        : toGetResult(entry, fields, await bodyOf(entry, reads, storeKey(key)))
    }
  } catch (error) {
    // a body that cannot be read (its file gone) makes a miss too
    reportStoreError(store, 'get', error)
  }
  return undefined
}

/** undici's rule: each Vary field of the stored value equals the request's (absent matches null). */
function varyMatches(vary: UndiciVary | undefined, headers: UndiciCacheKey['headers']): boolean {
  for (const [name, stored] of Object.entries(vary ?? {})) {
    const sent = headers?.[name] ?? null
    if (JSON.stringify(sent) !== JSON.stringify(stored)) return false
  }
  return true
}

function toGetResult(entry: StoredEntry, fields: UndiciFields, body: Buffer[] | Readable): UndiciGetResult {
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
    body,
  }
}

/**
 * The stored body: the chunks in an array when the store has it whole or it is at most
 * WHOLE_READ_MAX_BYTES (read now: undici's interceptor cannot fetch the rest of a body lost midway,
 * from chunk rows replaced or a Redis gone, so such a loss makes a miss rather than a failed hit),
 * else a stream read on demand. One of another length than the entry says throws, or fails its stream.
 */
async function bodyOf(entry: StoredEntry, reads: BodyReads, key: string): Promise<Buffer[] | Readable> {
  const body = entryBody(entry)
  if (entry.body !== undefined) return body as Buffer[]
  if (entry.sizeBytes <= WHOLE_READ_MAX_BYTES) return readWhole(body)
  return reads.track(key, Readable.from(body, { objectMode: false }))
}

async function readWhole(body: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<Buffer[]> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(chunk)
  return chunks
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

/** A Writable feeding a store writer: commit on end, abort on a destroy before that; undefined if the store declines. */
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
  let committed = false
  return new Writable({
    write: (chunk: Buffer, _encoding, callback) =>
      settle(store, 'write', () => entryWriter.write(chunk), callback),
    final: (callback) =>
      settle(
        store,
        'commit',
        () => entryWriter.commit(),
        (error) => {
          committed = !error
          callback(error)
        },
      ),
    // Node destroys a Writable after it finished too: a committed entry is not the writer's to drop
    destroy: (error, callback) => {
      if (!committed) entryWriter.abort()
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
