/** The primary cache key (RFC 9111 §2): the target URI, the same for GET and HEAD. */
import { type ParsedUrlQueryInput, stringify } from 'node:querystring'
import { BoundedMemo } from './policy/bounded-memo.js'

export interface KeyInput {
  origin?: string | URL | null
  path: string
  query?: Record<string, unknown> | null
}

/**
 * The path undici sends for its `query` option: serialised by node:querystring, as undici's own
 * serializePathWithQuery does (`a=` for null, `%20` for a space); undefined when undici refuses the
 * request (query given for a path that already has a query or fragment).
 */
function pathWithQuery(path: string, query: Record<string, unknown> | null | undefined): string | undefined {
  if (!query) return path
  if (path.includes('?') || path.includes('#')) return undefined
  const search = stringify(query as ParsedUrlQueryInput)
  return search === '' ? path : `${path}?${search}`
}

/** A percent-encoded octet (RFC 3986 §2.1). */
const PERCENT_ENCODED = /%([0-9A-Fa-f]{2})/g

/** A `%` that starts no percent-encoding (URL parsing leaves it as it is). */
const STRAY_PERCENT = /%(?![0-9A-Fa-f]{2})/

/** RFC 3986 §2.3: the characters a percent-encoding of means the same as the character itself. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/

/**
 * RFC 9110 §4.2.3, RFC 3986 §6.2.2.1–§6.2.2.2: one URI however it is percent-encoded. An encoded
 * unreserved character is decoded (`%41` is `A`, `%7e` is `~`), the others are upper-cased (`%2f` is
 * `%2F`), so a write to `/doc%41` invalidates what `/docA` stored, and both read one entry. A target
 * with a stray `%` is left as it is: decoding next to it could make a new escape (`%%32%35` is not `%25`).
 */
function percentNormalised(url: string): string {
  if (!url.includes('%') || STRAY_PERCENT.test(url)) return url
  return url.replace(PERCENT_ENCODED, (encoded, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16))
    return UNRESERVED.test(char) ? char : encoded.toUpperCase()
  })
}

/**
 * An absolute URL as URL parsing makes it: scheme and host lower-cased, fragment dropped. An empty query
 * stays (`/p?` is another URI than `/p`, RFC 3986 §6.2.3, and undici 7's fetch() sends it so).
 */
function parsedUrl(url: string): string {
  const parsed = new URL(url)
  const query = parsed.search === '' && parsed.href.replace(/#.*$/, '').endsWith('?') ? '?' : parsed.search
  return `${parsed.origin}${parsed.pathname}${query}`
}

/** Normalises an absolute URL into a key: as URL parsing makes it, percent-encoding normalised. */
export function keyFromUrl(url: string): string {
  return percentNormalised(parsedUrl(url))
}

/**
 * A path that URL parsing leaves as it is: only characters it never percent-encodes (no `'`, which a
 * special scheme's query encodes; no `\`, `#`, space or non-ASCII) and no segment that starts with a dot
 * (`.`, `..` and `%2e` forms are resolved away).
 */
const PLAIN_PATH = /^[A-Za-z0-9\-._~!$&()*+,;=:@/%?]*$/
const DOT_SEGMENT = /\/(\.|%2e)/i

function isPlainPath(path: string): boolean {
  return PLAIN_PATH.test(path) && !DOT_SEGMENT.test(path)
}

/** Normalised origins (`new URL(origin).origin`) by what the dispatch passed. */
const origins = new BoundedMemo<string, string>(256)

function normalisedOrigin(origin: string | URL): string {
  if (typeof origin !== 'string') return origin.origin
  return origins.get(origin) ?? origins.set(origin, new URL(origin).origin)
}

/**
 * Whether a request's answer comes from its own origin. undici 8's compose() tells an interceptor
 * the one origin its dispatcher talks to (a Pool, a Client), null when it has none (a BalancedPool),
 * or nothing (an Agent; undici 7): then each request's own. A Pool answers a request for another
 * origin from its own, so that answer is not cached under the request's URL.
 */
export function answeredByOwnOrigin(
  dispatcherOrigin: string | null | undefined,
  origin: string | URL | undefined | null,
): boolean {
  if (dispatcherOrigin === undefined) return true
  if (dispatcherOrigin === null || origin === undefined || origin === null) return false
  try {
    return normalisedOrigin(origin) === dispatcherOrigin
  } catch {
    return false
  }
}

/** RFC 9111 §4.4: the target a request reached; behind a Pool asked for another origin, the Pool's. */
export function reachedTarget<T extends KeyInput>(dispatcherOrigin: string | null | undefined, target: T): T {
  if (typeof dispatcherOrigin !== 'string' || answeredByOwnOrigin(dispatcherOrigin, target.origin))
    return target
  return { ...target, origin: dispatcherOrigin }
}

/**
 * RFC 9110 §9.3.1: content in a GET has no defined meaning, yet some servers answer by it (a search
 * query in the body): a request with content is keyed by nothing that tells it apart, so it is not cached.
 * undici's `pipeline()` always gives a stream for what its caller writes; a GET's is taken as empty.
 */
export function hasContent(body: unknown): boolean {
  if (body === undefined || body === null) return false
  if (typeof body === 'string') return body.length > 0
  if (ArrayBuffer.isView(body)) return body.byteLength > 0
  return !isPipelineBody(body)
}

/** The stream undici's pipeline() hands on for what its caller writes (known only as it is written). */
export function isPipelineBody(body: unknown): boolean {
  return (
    (body as { constructor?: { name?: unknown } } | null | undefined)?.constructor?.name === 'PipelineRequest'
  )
}

/**
 * The key for a dispatch; undefined when the request has no absolute target. `host`: the request's
 * Host field, when it has one (see withHost).
 */
export function cacheKey(input: KeyInput, host?: string | string[]): string | undefined {
  const target = targetOf(input)
  // RFC 9111 §2: a path URL parsing would change (`\`, dot segments, a fragment) is sent as it
  // is, so its parsed form would be another target's key: it gets none
  if (target === undefined || target.url !== target.sent) return undefined
  return withHost(percentNormalised(target.url), host)
}

/**
 * RFC 9110 §7.2, RFC 9112 §3.2.1: a Host field names the target's authority. When it is not the
 * authority of the address the request goes to (virtual hosts behind one address, or undici's dns
 * interceptor outside the cache), it joins that address in the key. Undefined for a repeated Host,
 * which undici refuses to send.
 */
export function withHost(url: string, host: string | string[] | undefined): string | undefined {
  if (host === undefined) return url
  if (typeof host !== 'string') return undefined
  const named = host.toLowerCase()
  const authorityStart = url.indexOf('//') + 2
  const authority = url.slice(authorityStart, url.indexOf('/', authorityStart))
  return named === authority ? url : `${url} host=${named}`
}

/**
 * The target URI a dispatch names, as URL parsing makes it (what an unsafe request invalidates: an
 * origin that resolves dot segments changed that target); undefined when it has none.
 */
export function targetUrl(input: KeyInput): string | undefined {
  return targetOf(input)?.url
}

/** The target as sent (origin and path) and as URL parsing makes it. */
function targetOf(input: KeyInput): { sent: string; url: string } | undefined {
  if (input.origin === undefined || input.origin === null) return undefined
  // A path that is not origin-form (e.g. `//other.host/x`) must not resolve to another origin.
  if (!input.path.startsWith('/') || input.path.startsWith('//')) return undefined
  try {
    const origin = normalisedOrigin(input.origin)
    const path = pathWithQuery(input.path, input.query)
    // An opaque origin ('null', e.g. file:) has no absolute target.
    if (origin === 'null' || path === undefined) return undefined
    const sent = origin + path
    return { sent, url: isPlainPath(path) ? sent : parsedUrl(sent) }
  } catch {
    return undefined
  }
}
