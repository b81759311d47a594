import { dateValueMs } from './age.js'
import { parseHttpDate } from './dates.js'
import { entityTagOf, weakMatch } from './entity-tag.js'
import { linesOf } from './fields.js'
import { listMembers, singletonValue } from './headers.js'
import { withoutFields } from './hop-by-hop.js'
import type { Headers } from './types.js'

/** How a cache answers a client's conditional request from a stored response (RFC 9111 §4.3.2). */
export type ClientConditionalOutcome = 'not-modified' | 'full'

/** What evaluating a client's conditionals needs about the stored response. */
export interface ConditionalTarget {
  headers: Headers
  /** When the stored response was received (epoch ms): the last resort for If-Modified-Since. */
  responseTimeMs: number
  /** The stored status; when given and not 2xx, preconditions are ignored (RFC 9110 §13.2.1). */
  statusCode?: number
}

// RFC 9110 §13.2.1: preconditions are ignored when the response would not be 2xx anyway
function preconditionsApply(stored: ConditionalTarget): boolean {
  return stored.statusCode === undefined || (stored.statusCode >= 200 && stored.statusCode < 300)
}

// RFC 9110 §13.1.2: `*` matches any stored (current) representation; otherwise a listed entity-tag
// must match the stored ETag by weak comparison (§8.8.3.2)
function noneMatchMatches(members: string[], storedTag: string | undefined): boolean {
  return members.some((member) => member === '*' || (storedTag !== undefined && weakMatch(member, storedTag)))
}

// RFC 9110 §13.1.3: a single field line holding a valid HTTP-date; anything else is ignored.
// `referenceMs` places an RFC 850 two-digit year (the stored response time keeps this pure).
function modifiedSinceMs(requestHeaders: Headers, referenceMs: number): number | undefined {
  const lines = linesOf(requestHeaders, 'if-modified-since')
  return lines.length === 1 ? parseHttpDate(lines[0], referenceMs) : undefined
}

// RFC 9111 §4.3.2: the stored Last-Modified; without a valid one, the stored Date, or without that
// the time the response was received. Truncated to whole seconds, the resolution of an HTTP-date.
function lastModificationMs(stored: ConditionalTarget): number {
  const lastModified = parseHttpDate(singletonValue(stored.headers, 'last-modified'), stored.responseTimeMs)
  const ms = lastModified ?? dateValueMs(stored.headers, stored.responseTimeMs)
  return Math.floor(ms / 1000) * 1000
}

/**
 * Evaluates a client's If-None-Match / If-Modified-Since against a stored response (RFC 9110 §13.2.2
 * steps 3–4, RFC 9111 §4.3.2). If-None-Match wins (If-Modified-Since is then ignored, §13.1.3): a
 * match → 'not-modified'. If-Modified-Since: not modified since the date → 'not-modified'. Anything
 * else → 'full'. For GET / HEAD only (§13.1.3); call `answersFromCache` first. Never throws.
 */
export function evaluateClientConditional(
  requestHeaders: Headers,
  stored: ConditionalTarget,
): ClientConditionalOutcome {
  if (!preconditionsApply(stored)) return 'full'
  if (linesOf(requestHeaders, 'if-none-match').length > 0) {
    const members = listMembers(requestHeaders, 'if-none-match')
    return noneMatchMatches(members, entityTagOf(stored.headers)) ? 'not-modified' : 'full'
  }
  const sinceMs = modifiedSinceMs(requestHeaders, stored.responseTimeMs)
  if (sinceMs === undefined) return 'full'
  return lastModificationMs(stored) <= sinceMs ? 'not-modified' : 'full'
}

// RFC 9111 §4.3.2: a cache evaluates only the conditionals it can answer from a stored response.
// If-Match and If-Unmodified-Since are left to the origin; If-Range goes with Range (range.ts).
const ORIGIN_CONDITIONALS = ['if-match', 'if-unmodified-since']

/** Whether the cache may answer the request's conditionals itself (none of ORIGIN_CONDITIONALS). */
export function answersFromCache(requestHeaders: Headers): boolean {
  return ORIGIN_CONDITIONALS.every((name) => linesOf(requestHeaders, name).length === 0)
}

// RFC 9110 §15.4.5: a 304 carries the fields a 200 would (Cache-Control, Content-Location, Date,
// ETag, Expires, Vary, Last-Modified, …) but no body, so it omits representation metadata and
// framing that describe the body: those in BODY_FIELDS.
const BODY_FIELDS: ReadonlySet<string> = new Set([
  'content-length',
  'content-type',
  'content-encoding',
  'content-range',
  'content-language',
  'transfer-encoding',
  'trailer',
])

/** The header fields of a 304 answering from `storedHeaders`: every stored field but BODY_FIELDS. */
export function notModifiedHeaders(storedHeaders: Headers): Headers {
  return withoutFields(storedHeaders, BODY_FIELDS)
}

const CLIENT_VALIDATORS: ReadonlySet<string> = new Set(['if-none-match', 'if-modified-since'])

// RFC 9111 §4.3.2: a cache revalidating for a conditional client request may use its own validators
// (RFC 9111 §4.3.1) instead of the client's; this drops the client's.
export function withoutClientConditionals(headers: Headers): Headers {
  return withoutFields(headers, CLIENT_VALIDATORS)
}
