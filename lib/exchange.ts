import type { Dispatcher } from 'undici'
import type { StaleServed, Validated } from './flights.js'
import type { CacheConfig, CacheRequestOptions } from './options.js'
import { type CacheStatusParams, type ForwardReason, formatCacheStatus } from './policy/cache-status.js'
import { targetedView } from './policy/targeted.js'
import type { RequestInfo, ResponseInfo } from './policy/types.js'
import type { Serving } from './serving.js'
import { isPromise, type StoredEntry } from './stores/store.js'

export type DispatchOptions = Dispatcher.DispatchOptions & { cache?: unknown }

/** One request's journey through the cache: what every step needs to know about it. */
export interface Exchange {
  readonly config: CacheConfig
  /** Primary cache key (lib/key.ts). */
  readonly key: string
  readonly request: RequestInfo
  /** When the request was made (RFC 9111 §4.2.3 request_time), epoch ms. */
  readonly requestTimeMs: number
  /** The cache's count of invalidations when the request was made (Invalidations.since). */
  readonly invalidationCount: number
  /** Which request of this process it was, in the order they were made (CommitOrder): no clock. */
  readonly sentOrder: number
  /** False when this request may not store its response (request `no-store`). */
  readonly mayStore: boolean
  /** Never contact the origin (request `only-if-cached` or `cache.onlyIfCached`, RFC 9111 §5.2.1.7). */
  readonly onlyIfCached: boolean
  readonly opts: DispatchOptions
  readonly requestOptions: CacheRequestOptions | undefined
  /** May this request wait on an identical one in flight, or lead one? */
  readonly coalesce: boolean
  /** Set when re-dispatched after waiting on a flight: entries stored since then are served. */
  readonly collapsed?: Collapsed
  /**
   * How many flights let it go because their first caller held the download (outcome `held`). Such a
   * request may wait on another flight only for its entry (never fed live, so no stopped caller holds
   * it); once MAX_RELEASES flights have let it go, it sends its own request.
   */
  readonly released?: number
  /**
   * Its preconditions are the origin's to evaluate (RFC 9111 §4.3.2): it always goes forward, and is
   * looked up only to say why (RFC 9211 §2.2).
   */
  readonly originOnly?: boolean
}

/** A request that waited on an identical one (RFC 9211 `collapsed`). */
export interface Collapsed {
  /** When the flight it waited on started (epoch ms). */
  sinceMs: number
  /** Why it would have gone to the origin itself. */
  fwd: ForwardReason
  /** An entry the flight validated (304) without rewriting it: served with the freshened metadata. */
  validated?: Validated
  /** The entry the flight's origin answered 304 for (RFC 9211 §2.3 `fwd-status=304` when it is served). */
  notModifiedEntryId?: Validated['entryId']
  /** The stale entry the flight served when the origin failed: its waiters are served it too, if they allow. */
  staleServed?: StaleServed
}

/** The headers the policy reads: RFC 9213 targeted fields replace Cache-Control and Expires. */
export function policyView<T extends ResponseInfo>(config: CacheConfig, response: T): T {
  if (config.targetFields.length === 0) return response
  const headers = targetedView(response.headers, config.targetFields)
  return headers === response.headers ? response : { ...response, headers }
}

/**
 * The Cache-Status field value (RFC 9211), or undefined when the header is turned off.
 * `ttl` counts whole seconds left, so a response one tenth of a second stale says `ttl=-1`.
 */
export function cacheStatusValue(config: CacheConfig, params: CacheStatusParams): string | undefined {
  if (config.cacheStatus === false) return undefined
  const ttlSeconds = params.ttlSeconds
  if (ttlSeconds === undefined || Number.isInteger(ttlSeconds))
    return formatCacheStatus(config.cacheStatus, params)
  return formatCacheStatus(config.cacheStatus, { ...params, ttlSeconds: Math.floor(ttlSeconds) })
}

/**
 * Runs a store call whose failure must never reach the caller; `serving`, when given, keeps closing
 * waiting until the call has settled.
 */
export function quietly(onError: (error: unknown) => void, call: () => unknown, serving?: Serving): void {
  try {
    const result = call()
    if (!isPromise(result)) return
    const handled = result.catch(onError)
    serving?.track(handled)
  } catch (error) {
    onError(error)
  }
}

/** RFC 9211 for a waiter: why its flight went to the origin, and what the origin said. */
export function collapsedStatus(
  collapsed: Collapsed | undefined,
  entryId: StoredEntry['id'],
): CacheStatusParams {
  const stale = collapsed?.staleServed
  if (stale?.entryId === entryId) return { ...stale, fwd: collapsed?.fwd, collapsed: true }
  const fwdStatus = collapsed?.notModifiedEntryId === entryId ? 304 : undefined
  return { fwd: collapsed?.fwd, fwdStatus, collapsed: true }
}
