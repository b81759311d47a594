import { requestDirectives, responseDirectives } from './cache-control.js'
import { linesOf, namesWith } from './fields.js'
import { HEURISTICALLY_CACHEABLE_STATUSES, hasExplicitExpiration } from './freshness.js'
import { HOP_BY_HOP_FIELDS, withConnectionNominated, withoutFields } from './hop-by-hop.js'
import type { CacheControl, Headers, RequestInfo, ResponseInfo } from './types.js'
import { hasMalformedVary, varyFieldNames } from './vary.js'

/** Status codes whose caching semantics this cache implements (RFC 9111 §3, §5.2.2.3). */
export const UNDERSTOOD_STATUSES: ReadonlySet<number> = new Set([
  200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501,
])

export type StoreRefusal =
  | 'method'
  | 'status'
  | 'request-no-store'
  | 'no-store'
  | 'malformed-cache-control'
  | 'private'
  | 'authorization'
  | 'set-cookie'
  | 'vary-star'
  | 'malformed-vary'
  | 'no-freshness'

export type StoreDecision = { storable: true } | { storable: false; reason: StoreRefusal }

// RFC 9111 §5.2.2.3: with must-understand and an understood status, no-store is ignored
function responseForbidsStorage(directives: CacheControl): boolean {
  return directives.noStore === true && directives.mustUnderstand !== true
}

// RFC 9111 §3.5: a shared cache stores an authorized response only when the response allows it
function authorizationAllowed(request: RequestInfo, directives: CacheControl): boolean {
  if (linesOf(request.headers, 'authorization').length === 0) return true
  return (
    directives.mustRevalidate === true ||
    directives.public === true ||
    directives.sMaxAgeSeconds !== undefined
  )
}

// RFC 9111 §3: some way to know the freshness: public, private (private caches), explicit expiration
// (Expires counts even when invalid) or a heuristically cacheable status
function hasFreshnessInformation(response: ResponseInfo, directives: CacheControl, shared: boolean): boolean {
  return (
    directives.public === true ||
    (!shared && directives.private !== undefined) ||
    hasExplicitExpiration(response.headers, shared) ||
    HEURISTICALLY_CACHEABLE_STATUSES.has(response.statusCode)
  )
}

/** The first reason, in RFC 9111 §3 order, why the response must not be stored. */
function refusal(request: RequestInfo, response: ResponseInfo, shared: boolean): StoreRefusal | undefined {
  const directives = responseDirectives(response.headers)
  if (request.method !== 'GET') return 'method'
  if (!UNDERSTOOD_STATUSES.has(response.statusCode)) return 'status'
  if (requestDirectives(request.headers).noStore === true) return 'request-no-store'
  if (responseForbidsStorage(directives)) return 'no-store'
  // a misformed field (`no-store; no-cache`, `max-age=60;private`) may hide what it forbids
  if (directives.malformed === true) return 'malformed-cache-control'
  if (shared && directives.private === true) return 'private'
  if (shared && !authorizationAllowed(request, directives)) return 'authorization'
  if (shared && linesOf(response.headers, 'set-cookie').length > 0) return 'set-cookie'
  // a malformed Vary (`Cookie Accept-Language`) selects as '*' does: it would tell no request apart
  if (varyFieldNames(response.headers) === '*')
    return hasMalformedVary(response.headers) ? 'malformed-vary' : 'vary-star'
  if (!hasFreshnessInformation(response, directives, shared)) return 'no-freshness'
  return undefined
}

/**
 * Whether a response may be stored (RFC 9111 §3). Only GET is stored; a shared cache also refuses
 * `Set-Cookie` responses (this library's policy; a private cache stores them).
 */
export function canStore(request: RequestInfo, response: ResponseInfo, shared: boolean): StoreDecision {
  const reason = refusal(request, response, shared)
  return reason === undefined ? { storable: true } : { storable: false, reason }
}

/**
 * RFC 9111 §3.5, §5.2.2.7: a shared cache uses only what a shared cache stored, never what a private
 * cache on the same store kept (private, Authorization and Set-Cookie responses among it).
 */
export function usableByCache(stored: { sharedCache?: true }, shared: boolean): boolean {
  return !shared || stored.sharedCache === true
}

/** The entries `usableByCache`: the same array when that is all of them (the usual case). */
export function usableEntries<T extends { sharedCache?: true }>(entries: T[], shared: boolean): T[] {
  return entries.every((entry) => usableByCache(entry, shared))
    ? entries
    : entries.filter((entry) => usableByCache(entry, shared))
}

// RFC 9111 §5.2.2.4 (both modes), §5.2.2.7 (shared caches only): fields named by qualified directives
function qualifiedFieldNames(directives: CacheControl, shared: boolean): string[] {
  const noCache = Array.isArray(directives.noCache) ? directives.noCache : []
  const privateFields = shared && Array.isArray(directives.private) ? directives.private : []
  return [...noCache, ...privateFields]
}

/**
 * The header fields to store (RFC 9111 §3.1): without hop-by-hop and Connection-nominated fields
 * and without fields named by `no-cache="…"` (and, in a shared cache, `private="…"`). Age is kept.
 * `policyHeaders` is the view the policy reads (RFC 9213 §2.1: a targeted field in place of
 * Cache-Control); fields named in either are left out, the safer reading.
 */
export function headersToStore(headers: Headers, shared: boolean, policyHeaders = headers): Headers {
  const named = qualifiedFieldNames(responseDirectives(headers), shared)
  if (policyHeaders !== headers) named.push(...qualifiedFieldNames(responseDirectives(policyHeaders), shared))
  return withoutFields(headers, namesWith(withConnectionNominated(HOP_BY_HOP_FIELDS, headers), named))
}
