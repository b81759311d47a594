import { reportStoreError } from './diagnostics.js'
import { type Exchange, policyView, quietly } from './exchange.js'
import type { FlightOutcome, Validated } from './flights.js'
import { keptUntilMs } from './handlers/entry-meta.js'
import type { CacheConfig } from './options.js'
import { responseDirectives } from './policy/cache-control.js'
import { singletonValue } from './policy/headers.js'
import { freshenedHeaders, sameStrongValidator, withValidationTimes } from './policy/revalidation.js'
import { canStore, headersToStore, type StoreDecision, usableEntries } from './policy/storable.js'
import type { Headers, HeaderValue, ResponseInfo } from './policy/types.js'
import { selectVariant, varyFieldNames, varyKey, varyValues } from './policy/vary.js'
import {
  afterAnswer,
  type CacheStore,
  type EntryMeta,
  type StoredEntry,
  withEntries,
} from './stores/store.js'

/**
 * The stored metadata freshened by a 304 or HEAD (RFC 9111 §4.3.4), with new request/response times.
 * Its selecting values are those of the request the origin just answered (RFC 9111 §4.1): they match
 * the stored ones on every field the old Vary named, and a field a new Vary names is the validating
 * request's (the origin said the stored response is what that request selects).
 */
export function freshenedMeta(exchange: Exchange, entry: StoredEntry, newHeaders: Headers): EntryMeta {
  const headers = headersFreshenedBy(entry.headers, newHeaders)
  const names = varyFieldNames(headers)
  const selecting = names === '*' ? entry.varyValues : varyValues(names, exchange.request.headers)
  return metaOf(exchange, entry, headers, selecting)
}

/** Stored fields updated by a 304's or HEAD's, with the validating exchange's Age and Date (RFC 9111 §4.3.4). */
function headersFreshenedBy(stored: Headers, newHeaders: Headers): Headers {
  return withValidationTimes(freshenedHeaders(stored, newHeaders), newHeaders)
}

/** RFC 9111 §4.4, §5.2.1.5: nothing is written back for a no-store request, or one sent before its key was invalidated. */
function mayWriteBack(exchange: Exchange): boolean {
  return exchange.mayStore && !exchange.config.invalidations.since(exchange.key, exchange.invalidationCount)
}

/** `entry`'s metadata with new headers and selecting values, timed by the validating exchange. */
function metaOf(
  exchange: Exchange,
  entry: StoredEntry,
  headers: Headers,
  selecting: Record<string, string | null>,
): EntryMeta {
  const meta: EntryMeta = {
    statusCode: entry.statusCode,
    statusMessage: entry.statusMessage,
    headers,
    requestTimeMs: exchange.requestTimeMs,
    responseTimeMs: Date.now(),
    varyValues: selecting,
    varyKey: varyKey(selecting),
    deleteAtMs: 0,
    sharedCache: exchange.config.shared ? true : undefined,
    // whose response the body is: a validation (a HEAD's, a 304's) does not change it
    authorized: entry.authorized,
    writeId: entry.writeId,
  }
  meta.deleteAtMs = keptUntilMs(exchange, meta)
  return meta
}

/** A shared cache never keeps a Set-Cookie, even one that arrives on a 304 (see storable.ts). */
function withoutSharedCookies(headers: Headers, shared: boolean): Headers {
  if (!shared || headers['set-cookie'] === undefined) return headers
  const { 'set-cookie': _dropped, ...rest } = headers
  return rest
}

/**
 * Writes freshened metadata back; if the new headers make the response unstorable (e.g.
 * `no-store`, or `private` in a shared cache) the entry is removed instead, by `removeLater` when
 * given (the caller is still serving the entry's body; until then it is retired: served to nobody
 * else). A request with `no-store` (RFC 9111 §5.2.1.5), or one sent before its key was invalidated,
 * changes nothing stored.
 */
export function storeFreshened(
  exchange: Exchange,
  entry: StoredEntry,
  meta: EntryMeta,
  settled?: (outcome: FlightOutcome, validated?: Validated) => void,
  removeLater?: (remove: () => void) => void,
): void {
  const { config, key } = exchange
  if (!mayWriteBack(exchange)) {
    settled?.('not-stored')
    return
  }
  const { stored, decision } = storedForm(exchange, meta)
  const outcome: FlightOutcome = decision.storable ? 'stored' : 'not-stored'
  if (!decision.storable && removeLater) {
    // served to nobody else meanwhile (RFC 9111 §5.2.2.7: the update may say private)
    config.invalidations.retire(key, entry.id)
    settled?.(outcome)
    const onError = (error: unknown) => reportStoreError(config.store, 'delete', error)
    const removed = () => config.invalidations.removed(key, entry.id)
    removeLater(() =>
      quietly(
        onError,
        () => afterAnswer(removeIfStored(config.store, key, entry.id), removed),
        config.serving,
      ),
    )
    return
  }
  if (decision.storable && changesNothing(exchange, entry, stored)) {
    // waiters are served what would be stored: never the 304's Set-Cookie or private fields
    settled?.('stored', { entryId: entry.id, meta: stored })
    return
  }
  // waiters are served what the 304 validated, also when the store refused it (too big: it keeps the
  // entry's old metadata, which the 304 no longer vouches for)
  const validated = decision.storable ? { entryId: entry.id, meta: stored } : undefined
  const done = () => settled?.(outcome, validated)
  quietly(
    (error) => {
      reportStoreError(config.store, decision.storable ? 'update' : 'delete', error)
      settled?.('not-stored')
    },
    () =>
      afterAnswer(
        decision.storable
          ? config.store.update(key, entry.id, stored)
          : removeIfStored(config.store, key, entry.id),
        done,
      ),
    config.serving,
  )
}

/**
 * Freshened metadata as it would be stored (fields a shared cache keeps), and whether it may be. The
 * response to a request with Authorization stays one whoever validates it (RFC 9111 §3.5): its new
 * fields must still let a shared cache reuse it.
 */
function storedForm(exchange: Exchange, meta: EntryMeta): { stored: EntryMeta; decision: StoreDecision } {
  const { config, request } = exchange
  const merged = withoutSharedCookies(meta.headers, config.shared)
  const view = policyView(config, { statusCode: meta.statusCode, headers: merged })
  const stored = { ...meta, headers: headersToStore(merged, config.shared, view.headers) }
  const headers =
    meta.authorized === undefined ? request.headers : { ...request.headers, authorization: meta.authorized }
  return {
    stored,
    decision: canStore({ method: 'GET', headers }, policyView(config, stored), config.shared),
  }
}

/**
 * RFC 9111 §4.3.4: a 304's strong validator identifies every stored response with it, so the other
 * variants under the key that carry it are freshened too, each keeping its own selecting values; not
 * when the 304 names another Vary (their values for its fields are unknown), nor those of the other
 * cache mode on a shared store. Only an entry stored with Vary has such siblings, so the key is looked
 * up again only then.
 */
export function freshenSiblings(exchange: Exchange, validated: StoredEntry, notModified: Headers): void {
  const { config, key } = exchange
  const response = { statusCode: 304, headers: notModified }
  if (validated.varyKey === '' || !sameStrongValidator(validated, response) || !mayWriteBack(exchange)) return
  const update = (entries: StoredEntry[]) => {
    for (const sibling of usableEntries(entries, config.shared)) {
      // a private cache reads a shared cache's entries but never rewrites them with its user's 304
      if (sibling.id === validated.id || (sibling.sharedCache === true) !== config.shared) continue
      if (!sameStrongValidator(sibling, response)) continue
      const headers = headersFreshenedBy(sibling.headers, notModified)
      if (String(varyFieldNames(headers)) !== String(varyFieldNames(sibling.headers))) continue
      const meta = metaOf(exchange, sibling, headers, sibling.varyValues)
      const { stored, decision } = storedForm(exchange, meta)
      if (!decision.storable || changesNothing(exchange, sibling, stored)) continue
      quietly(
        (error) => reportStoreError(config.store, 'update', error),
        () => config.store.update(key, sibling.id, stored),
        config.serving,
      )
    }
  }
  quietly(
    (error) => reportStoreError(config.store, 'get', error),
    () => withEntries(config.store, key, update),
    config.serving,
  )
}

/** The entry `id` under `key`, if it is still stored (not removed, evicted or replaced since it was looked up). */
export function stillStored(
  store: CacheStore,
  key: string,
  id: StoredEntry['id'],
): StoredEntry | undefined | Promise<StoredEntry | undefined> {
  return withEntries(store, key, (entries) => entries.find((stored) => stored.id === id))
}

/** Removes `key`'s variants if the entry `id` is still among them (not replaced meanwhile by a newer response). */
function removeIfStored(store: CacheStore, key: string, id: StoredEntry['id']): void | Promise<void> {
  return afterAnswer(stillStored(store, key, id), (entry) => (entry ? store.delete(key) : undefined))
}

/** Removes `key`'s entries, reporting a failure (RFC 9111 §4.3.5: a stored response the HEAD shows outdated). */
function removeOutdated(config: CacheConfig, key: string): void {
  quietly(
    (error) => reportStoreError(config.store, 'delete', error),
    () => config.store.delete(key),
    config.serving,
  )
}

/** Fields that change on every response and decide nothing for a response that is stale on arrival. */
const TIMING_FIELDS: ReadonlySet<string> = new Set(['date', 'age'])

function sameValue(a: HeaderValue, b: HeaderValue): boolean {
  if (a === b) return true
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
  return a.every((line, index) => line === b[index])
}

function ownValue(headers: Headers, name: string): HeaderValue {
  return Object.hasOwn(headers, name) ? headers[name] : undefined
}

/** Whether `a` and `b` have the same fields (an undefined value counts as absent), `ignored` aside. */
function sameFieldsBut(a: Headers, b: Headers, ignored: ReadonlySet<string>): boolean {
  for (const name of Object.keys(a)) {
    if (!ignored.has(name) && !sameValue(a[name], ownValue(b, name))) return false
  }
  for (const name of Object.keys(b)) {
    if (!ignored.has(name) && !Object.hasOwn(a, name) && b[name] !== undefined) return false
  }
  return true
}

/**
 * A 304 for a `no-cache` response that changes no field but its dates: every use of such a response
 * is validated first and it is never served stale (RFC 9111 §5.2.2.4, RFC 5861), so its stored
 * times decide nothing later and the write is skipped; but for a request with `cache.ttl`, whose
 * forced lifetime counts from them (a later one without writes nothing: one with ttl then validates
 * once more, and writes).
 */
function changesNothing(exchange: Exchange, entry: StoredEntry, freshened: EntryMeta): boolean {
  if (exchange.requestOptions?.ttl !== undefined) return false
  if (responseDirectives(policyView(exchange.config, freshened).headers).noCache !== true) return false
  return sameFieldsBut(entry.headers, freshened.headers, TIMING_FIELDS)
}

const HEAD_VALIDATORS = ['etag', 'last-modified'] as const

/**
 * RFC 9111 §4.3.5: a HEAD response freshens the stored GET response only with matching validators and
 * length: each of ETag and Last-Modified the same in both, byte for byte (a weak ETag is not a strong
 * one; one that only the GET has counts as a change), and Content-Length, when sent, the body's.
 */
function headMatches(entry: StoredEntry, head: ResponseInfo): boolean {
  const length = singletonValue(head.headers, 'content-length')
  if (length !== undefined && Number(length) !== entry.sizeBytes) return false
  return HEAD_VALIDATORS.every(
    (name) => singletonValue(entry.headers, name) === singletonValue(head.headers, name),
  )
}

/**
 * Freshens the stored GET entry from a 200 answer to a forwarded HEAD (RFC 9111 §4.3.5); when its
 * validators or length differ, the stored GET is out of date and its key's entries are removed.
 */
export function freshenFromHead(exchange: Exchange, head: ResponseInfo): void {
  const { config, key, request } = exchange
  const lookedUp = config.invalidations.lookupStarted()
  const update = (entries: StoredEntry[]) => {
    const usable = config.invalidations.usable(config.store, key, entries, lookedUp)
    const entry = selectVariant(usableEntries(usable, config.shared), request.headers)
    if (!entry) return
    if (headMatches(entry, head))
      storeFreshened(exchange, entry, freshenedMeta(exchange, entry, head.headers))
    else removeOutdated(config, key)
  }
  quietly(
    (error) => reportStoreError(config.store, 'get', error),
    () => withEntries(config.store, key, update),
    config.serving,
  )
}
