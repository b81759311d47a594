/** Header fields as undici parses them: lower-case names, arrays for repeated fields. */
export type HeaderValue = string | string[] | undefined
export type Headers = Record<string, HeaderValue>

/** The parts of a request the policy reads. */
export interface RequestInfo {
  method: string
  headers: Headers
}

/** The parts of a response the policy reads. */
export interface ResponseInfo {
  statusCode: number
  headers: Headers
}

/** A stored response: what the cache keeps besides the body (RFC 9111 §3). */
export interface StoredResponse extends ResponseInfo {
  statusMessage: string
  /** When the request that produced this response was sent (epoch ms; RFC 9111 §4.2.3 request_time). */
  requestTimeMs: number
  /** When this response was received (epoch ms; RFC 9111 §4.2.3 response_time). */
  responseTimeMs: number
  /** Request header values that selected this response, by lower-case field name (RFC 9111 §4.1). */
  varyValues: Record<string, string | null>
}

/** Parsed Cache-Control (RFC 9111 §5.2). Absent = directive not present. Times in seconds. */
export interface CacheControl {
  /** A member is not `token [ "=" ( token / quoted-string ) ]` (e.g. `public; max-age=60`): the field cannot be trusted. */
  malformed?: true
  maxAgeSeconds?: number
  sMaxAgeSeconds?: number
  /** Infinity when `max-stale` has no value (RFC 9111 §5.2.1.2). */
  maxStaleSeconds?: number
  minFreshSeconds?: number
  staleWhileRevalidateSeconds?: number
  staleIfErrorSeconds?: number
  /** `true` for bare `no-cache`; the field names for `no-cache="a, b"`. */
  noCache?: true | string[]
  /** `true` for bare `private`; the field names for `private="a, b"`. */
  private?: true | string[]
  noStore?: true
  public?: true
  mustRevalidate?: true
  proxyRevalidate?: true
  mustUnderstand?: true
  immutable?: true
  noTransform?: true
  onlyIfCached?: true
}
