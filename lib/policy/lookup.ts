import { currentAgeSeconds } from './age.js'
import { requestDirectives, responseDirectives } from './cache-control.js'
import { freshnessLifetimeSeconds } from './freshness.js'
import { hasValidator } from './revalidation.js'
import type { CacheControl, RequestInfo, StoredResponse } from './types.js'

export type ReuseAction = 'fresh' | 'stale' | 'revalidate'

export type ReuseReason =
  | 'fresh'
  | 'request-no-cache'
  | 'response-no-cache'
  | 'request-max-age'
  | 'min-fresh'
  | 'must-revalidate'
  | 'proxy-revalidate'
  | 'max-stale'
  | 'max-stale-exceeded'
  | 'stale'

export interface ReuseDecision {
  action: ReuseAction
  ageSeconds: number
  lifetimeSeconds: number
  /** lifetime − age; negative once stale. */
  ttlSeconds: number
  reason: ReuseReason
}

interface Timing {
  ageSeconds: number
  lifetimeSeconds: number
  ttlSeconds: number
}

function timingOf(stored: StoredResponse, nowMs: number, shared: boolean): Timing {
  const ageSeconds = currentAgeSeconds(stored, nowMs)
  const lifetimeSeconds = freshnessLifetimeSeconds(stored, shared)
  return { ageSeconds, lifetimeSeconds, ttlSeconds: lifetimeSeconds - ageSeconds }
}

// RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.8, §5.2.2.10: directives that forbid serving stale; s-maxage and
// proxy-revalidate bind shared caches only
function staleForbiddenBy(
  directives: CacheControl,
  shared: boolean,
): 'must-revalidate' | 'proxy-revalidate' | undefined {
  if (directives.mustRevalidate === true) return 'must-revalidate'
  if (shared && (directives.proxyRevalidate === true || directives.sMaxAgeSeconds !== undefined)) {
    return 'proxy-revalidate'
  }
  return undefined
}

// RFC 9111 §4.2: fresh while the freshness lifetime exceeds the current age
function isFresh(timing: Timing): boolean {
  return timing.lifetimeSeconds > timing.ageSeconds
}

// RFC 8246 §2: while an `immutable` response is fresh, a reload (request max-age it exceeds, e.g.
// max-age=0) does not revalidate it; a forced reload (request no-cache) still does
function immutableWhileFresh(responseCc: CacheControl, timing: Timing): boolean {
  return responseCc.immutable === true && isFresh(timing)
}

// RFC 9111 §5.2.1.1: the client will not accept a response older than its max-age
function exceedsRequestMaxAge(requestCc: CacheControl, timing: Timing): boolean {
  return requestCc.maxAgeSeconds !== undefined && timing.ageSeconds > requestCc.maxAgeSeconds
}

// RFC 9111 §5.2.1.4, §5.2.2.4 (bare no-cache), §5.2.1.1 (request max-age, unless RFC 8246 immutable):
// reasons to revalidate regardless of freshness
function revalidationDemand(
  requestCc: CacheControl,
  responseCc: CacheControl,
  timing: Timing,
): ReuseReason | undefined {
  if (requestCc.noCache !== undefined) return 'request-no-cache'
  if (responseCc.noCache === true) return 'response-no-cache'
  if (exceedsRequestMaxAge(requestCc, timing) && !immutableWhileFresh(responseCc, timing))
    return 'request-max-age'
  return undefined
}

// RFC 9111 §4.2 (fresh when lifetime > age) and §5.2.1.3 (min-fresh, which a max-stale covering it relaxes)
function freshReason(requestCc: CacheControl, timing: Timing): ReuseReason | undefined {
  if (!isFresh(timing)) return undefined
  const minFreshSeconds = requestCc.minFreshSeconds
  if (minFreshSeconds === undefined || timing.ttlSeconds >= minFreshSeconds) return 'fresh'
  return maxStaleCovers(requestCc, timing) ? 'fresh' : 'min-fresh'
}

/**
 * RFC 9111 §5.2.1.2: max-stale accepts a stale response up to that staleness (bare: any). With
 * min-fresh (§5.2.1.3) the request wants that many seconds of freshness left, and max-stale lets it
 * fall short by at most its own: one rule for fresh and stale responses, so a staler one is never
 * served where a fresher one is not.
 */
function maxStaleCovers(requestCc: CacheControl, timing: Timing): boolean {
  const { maxStaleSeconds, minFreshSeconds = 0 } = requestCc
  return maxStaleSeconds !== undefined && minFreshSeconds - timing.ttlSeconds <= maxStaleSeconds
}

/** The reason and action for one stored response, in RFC 9111 §4 order. */
function reuseReason(
  requestCc: CacheControl,
  responseCc: CacheControl,
  timing: Timing,
  shared: boolean,
): ReuseReason {
  return (
    revalidationDemand(requestCc, responseCc, timing) ??
    freshReason(requestCc, timing) ??
    staleForbiddenBy(responseCc, shared) ??
    (maxStaleCovers(requestCc, timing) ? 'max-stale' : (staleRefusedByRequest(requestCc) ?? 'stale'))
  )
}

// RFC 9111 §5.2.1.1–§5.2.1.3: a request with max-age or min-fresh (and no max-stale covering it), or
// with a max-stale the staleness exceeds, does not want this stale response, not even through
// stale-while-revalidate (RFC 5861 §3)
function staleRefusedByRequest(requestCc: CacheControl): ReuseReason | undefined {
  if (requestCc.maxStaleSeconds !== undefined) return 'max-stale-exceeded'
  if (requestCc.maxAgeSeconds !== undefined) return 'request-max-age'
  return requestCc.minFreshSeconds !== undefined ? 'min-fresh' : undefined
}

function actionFor(reason: ReuseReason): ReuseAction {
  if (reason === 'fresh') return 'fresh'
  return reason === 'max-stale' ? 'stale' : 'revalidate'
}

/** Whether a stored response may answer a request now, and how (RFC 9111 §4, §5.2; RFC 8246 §2). */
export function decideReuse(
  request: RequestInfo,
  stored: StoredResponse,
  nowMs: number,
  shared: boolean,
): ReuseDecision {
  const timing = timingOf(stored, nowMs, shared)
  const reason = reuseReason(
    requestDirectives(request.headers),
    responseDirectives(stored.headers),
    timing,
    shared,
  )
  const { ageSeconds, lifetimeSeconds, ttlSeconds } = timing
  return { action: actionFor(reason), ageSeconds, lifetimeSeconds, ttlSeconds, reason }
}

// RFC 9111 §5.2.1.4 (no-cache), §5.2.1.1 (max-age=0): the request asks for the origin's answer to
// itself (fetch()'s reload, no-store and no-cache modes), not one to a request sent before it
export function wantsOwnAnswer(request: RequestInfo): boolean {
  const requestCc = requestDirectives(request.headers)
  return requestCc.noCache !== undefined || requestCc.maxAgeSeconds === 0
}

// RFC 9111 §5.2.2.4 (bare no-cache), §4.2 (no freshness lifetime): however recently validated, the
// stored response needs validation again before each reuse
export function validatedForEachUse(stored: StoredResponse, shared: boolean): boolean {
  return responseDirectives(stored.headers).noCache === true || freshnessLifetimeSeconds(stored, shared) <= 0
}

// RFC 5861 §3: serve stale while revalidating in the background, within the window, for plain staleness
export function staleWhileRevalidateAllows(
  stored: StoredResponse,
  decision: ReuseDecision,
  shared: boolean,
): boolean {
  const directives = responseDirectives(stored.headers)
  const windowSeconds = directives.staleWhileRevalidateSeconds
  if (decision.reason !== 'stale' || windowSeconds === undefined) return false
  return staleForbiddenBy(directives, shared) === undefined && -decision.ttlSeconds <= windowSeconds
}

// RFC 5861 §4: serve stale on an error within the window (the request's value wins); never past
// must-revalidate / proxy-revalidate / s-maxage (RFC 9111 §4.2.4) nor bare no-cache (§5.2.2.4)
export function staleIfErrorAllows(
  request: RequestInfo,
  stored: StoredResponse,
  nowMs: number,
  shared: boolean,
): boolean {
  const directives = responseDirectives(stored.headers)
  const requestCc = requestDirectives(request.headers)
  const windowSeconds = requestCc.staleIfErrorSeconds ?? directives.staleIfErrorSeconds
  if (windowSeconds === undefined || directives.noCache === true) return false
  if (staleForbiddenBy(directives, shared) !== undefined) return false
  const timing = timingOf(stored, nowMs, shared)
  if (requestCc.staleIfErrorSeconds === undefined && reloadAsked(requestCc, timing)) return false
  return -timing.ttlSeconds <= windowSeconds
}

// RFC 9111 §5.2.1.4, §5.2.1.1: a request with no-cache (or Pragma: no-cache), or a max-age the stored
// response exceeds, asks for the origin's answer (fetch()'s reload and no-store modes send no-cache):
// its failure is not hidden behind the stored response, unless the request itself asks stale-if-error
function reloadAsked(requestCc: CacheControl, timing: Timing): boolean {
  return requestCc.noCache !== undefined || exceedsRequestMaxAge(requestCc, timing)
}

/** The longest stale window the response grants itself (RFC 5861), 0 when staleness is forbidden. */
function staleWindowSeconds(directives: CacheControl, shared: boolean): number {
  if (staleForbiddenBy(directives, shared) !== undefined) return 0
  return Math.max(directives.staleWhileRevalidateSeconds ?? 0, directives.staleIfErrorSeconds ?? 0)
}

/**
 * Epoch ms after which the stored response has no use. With a validator it can always be
 * revalidated, so it is kept until evicted; without one it is useless once `ttl + window < 0`, and
 * a bare `no-cache` response without a validator is useless from the start.
 */
export function usefulUntilMs(stored: StoredResponse, shared: boolean): number {
  if (hasValidator(stored.headers)) return Number.MAX_SAFE_INTEGER
  const directives = responseDirectives(stored.headers)
  if (directives.noCache === true) return stored.responseTimeMs
  const { ttlSeconds } = timingOf(stored, stored.responseTimeMs, shared)
  return stored.responseTimeMs + (ttlSeconds + staleWindowSeconds(directives, shared)) * 1000
}

/** Storing a response that no request could ever reuse (stale, no validator, no stale-* window) is waste. */
export function isWorthStoring(stored: StoredResponse, shared: boolean): boolean {
  return usefulUntilMs(stored, shared) > stored.responseTimeMs
}
