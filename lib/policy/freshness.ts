import { dateValueMs } from './age.js'
import { responseDirectives } from './cache-control.js'
import { parseHttpDate, parseStrictHttpDate } from './dates.js'
import { linesOf } from './fields.js'
import { singletonValue } from './headers.js'
import type { Headers } from './types.js'

/** Status codes that are heuristically cacheable by default (RFC 9110 §15.1). */
export const HEURISTICALLY_CACHEABLE_STATUSES: ReadonlySet<number> = new Set([
  200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501,
])

/** What freshness needs about a response. */
export interface FreshnessInput {
  statusCode: number
  headers: Headers
  responseTimeMs: number
}

// RFC 9111 §5.3: Expires − Date; an invalid Expires, or differing repeated lines, means already expired
function expiresLifetimeSeconds(response: FreshnessInput): number | undefined {
  const found = linesOf(response.headers, 'expires')
  if (found.length === 0) return undefined
  const lines = found.map((line) => line.trim())
  if (new Set(lines).size > 1) return 0
  const expiresMs = parseStrictHttpDate(lines[0], response.responseTimeMs)
  if (expiresMs === undefined) return 0
  return Math.max(0, (expiresMs - dateValueMs(response.headers, response.responseTimeMs)) / 1000)
}

// RFC 9111 §4.2.1: s-maxage (shared caches only), then max-age, then Expires
function explicitLifetimeSeconds(response: FreshnessInput, shared: boolean): number | undefined {
  const directives = responseDirectives(response.headers)
  if (shared && directives.sMaxAgeSeconds !== undefined) return directives.sMaxAgeSeconds
  if (directives.maxAgeSeconds !== undefined) return directives.maxAgeSeconds
  return expiresLifetimeSeconds(response)
}

// RFC 9111 §4.2.2: a heuristic needs a heuristically cacheable status (RFC 9110 §15.1) or `public`
function allowsHeuristic(response: FreshnessInput): boolean {
  return (
    HEURISTICALLY_CACHEABLE_STATUSES.has(response.statusCode) ||
    responseDirectives(response.headers).public === true
  )
}

// RFC 9111 §4.2.2: 10% of the time since Last-Modified, measured at Date (or the response time)
function heuristicLifetimeSeconds(response: FreshnessInput): number {
  if (!allowsHeuristic(response)) return 0
  const lastModifiedMs = parseHttpDate(
    singletonValue(response.headers, 'last-modified'),
    response.responseTimeMs,
  )
  if (lastModifiedMs === undefined) return 0
  const sinceModifiedMs = dateValueMs(response.headers, response.responseTimeMs) - lastModifiedMs
  return Math.max(0, sinceModifiedMs / 10_000)
}

/**
 * The freshness lifetime in seconds (RFC 9111 §4.2.1): explicit expiration when present, else a
 * heuristic (§4.2.2), else 0. Never negative; `immutable` does not invent a lifetime.
 */
export function freshnessLifetimeSeconds(response: FreshnessInput, shared: boolean): number {
  return explicitLifetimeSeconds(response, shared) ?? heuristicLifetimeSeconds(response)
}

/** Whether the response states its own expiration (RFC 9111 §4.2.1): s-maxage (shared), max-age or Expires. */
export function hasExplicitExpiration(headers: Headers, shared: boolean): boolean {
  const directives = responseDirectives(headers)
  return (
    (shared && directives.sMaxAgeSeconds !== undefined) ||
    directives.maxAgeSeconds !== undefined ||
    linesOf(headers, 'expires').length > 0
  )
}
