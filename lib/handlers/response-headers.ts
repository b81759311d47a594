import { ageHeaderValue } from '../policy/age.js'
import { formatHttpDate } from '../policy/dates.js'
import type { Headers } from '../policy/types.js'
import { definedFields } from '../request-headers.js'

export type OutgoingHeaders = Record<string, string | string[]>

/** Our Cache-Status entry goes last: RFC 9211 §2 lists caches from the origin's side to the user's. */
function withCacheStatus(headers: OutgoingHeaders, cacheStatus: string | undefined): OutgoingHeaders {
  if (cacheStatus === undefined) return headers
  const upstream = headers['cache-status']
  headers['cache-status'] =
    upstream === undefined
      ? cacheStatus
      : [...(Array.isArray(upstream) ? upstream : [upstream]), cacheStatus].join(', ')
  return headers
}

/**
 * `headers` with a Date saying `receivedMs` when they have none (a copy then). RFC 9110 §6.6.1: a
 * recipient with a clock that caches or forwards a response without Date adds one saying when the
 * response was received.
 */
export function dated(headers: Headers, receivedMs: number): Headers {
  return headers.date === undefined ? { ...headers, date: formatHttpDate(receivedMs) } : headers
}

/** Headers of a response passed on from the origin (or made by the cache), received at `receivedMs`. */
export function forwardedHeaders(
  headers: Headers,
  cacheStatus: string | undefined,
  receivedMs: number = Date.now(),
): OutgoingHeaders {
  return withCacheStatus(definedFields(dated(headers, receivedMs)), cacheStatus)
}

/**
 * Headers of a response served from the store (received at `receivedMs`): Age replaced by the current
 * age (RFC 9111 §5.1), Content-Length added from the stored size when the body has one and the origin
 * did not say.
 */
export function servedHeaders(
  stored: Headers,
  receivedMs: number,
  ageSeconds: number,
  cacheStatus: string | undefined,
  sizeBytes: number | undefined,
): OutgoingHeaders {
  const out = definedFields(dated(stored, receivedMs))
  out.age = ageHeaderValue(ageSeconds)
  if (
    sizeBytes !== undefined &&
    out['content-length'] === undefined &&
    out['transfer-encoding'] === undefined
  ) {
    out['content-length'] = String(sizeBytes)
  }
  return withCacheStatus(out, cacheStatus)
}
