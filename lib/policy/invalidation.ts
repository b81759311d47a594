import { singletonValue } from './headers.js'
import type { Headers } from './types.js'

const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

// RFC 9110 §9.2.1: GET, HEAD, OPTIONS and TRACE are safe (method names are case-sensitive)
export function isSafeMethod(method: string): boolean {
  return SAFE_METHODS.has(method)
}

// RFC 9111 §4.4: an unsafe method with a non-error (2xx or 3xx) response invalidates
export function invalidatesOnResponse(method: string, statusCode: number): boolean {
  return !isSafeMethod(method) && statusCode >= 200 && statusCode < 400
}

function parseUrl(value: string, base?: URL): URL | undefined {
  try {
    return new URL(value, base)
  } catch {
    return undefined
  }
}

/** The URL as an absolute href without its fragment. */
function withoutFragment(url: URL): string {
  const copy = new URL(url.href)
  copy.hash = ''
  return copy.href
}

// RFC 9111 §4.4: Location and Content-Location are invalidated only when they share the request's origin
function sameOriginTarget(requestUrl: URL, value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined
  const target = parseUrl(value, requestUrl)
  if (target === undefined || target.origin === 'null' || target.origin !== requestUrl.origin)
    return undefined
  return withoutFragment(target)
}

/**
 * The URLs whose stored responses an unsafe request invalidates (RFC 9111 §4.4): the request URL
 * and same-origin Location / Content-Location, absolute, without fragment, deduplicated. A malformed
 * request URL gives none; a malformed Location is skipped.
 */
export function invalidationTargets(requestUrl: string, responseHeaders: Headers): string[] {
  const url = parseUrl(requestUrl)
  if (url === undefined) return []
  const targets = [
    withoutFragment(url),
    sameOriginTarget(url, singletonValue(responseHeaders, 'location')),
    sameOriginTarget(url, singletonValue(responseHeaders, 'content-location')),
  ]
  return [...new Set(targets.filter((target) => target !== undefined))]
}
