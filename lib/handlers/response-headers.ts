import { ageHeaderValue } from '../policy/age.js'
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

/** Headers of a response passed on from the origin. */
export function forwardedHeaders(headers: Headers, cacheStatus: string | undefined): OutgoingHeaders {
  return withCacheStatus(definedFields(headers), cacheStatus)
}

/**
 * Headers of a response served from the store: Age replaced by the current age (RFC 9111 §5.1),
 * Content-Length added from the stored size when the body has one and the origin did not say.
 */
export function servedHeaders(
  stored: Headers,
  ageSeconds: number,
  cacheStatus: string | undefined,
  sizeBytes: number | undefined,
): OutgoingHeaders {
  const out = definedFields(stored)
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
