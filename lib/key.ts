/** The primary cache key (RFC 9111 §2): the target URI, the same for GET and HEAD. */

export interface KeyInput {
  origin?: string | URL | null
  path: string
  query?: Record<string, unknown> | null
}

/** Appends undici's `query` option the way undici serialises it into the path. */
function pathWithQuery(path: string, query: Record<string, unknown> | null | undefined): string {
  if (!query) return path
  const params = new URLSearchParams()
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue
    for (const member of Array.isArray(value) ? value : [value]) params.append(name, String(member))
  }
  const search = params.toString()
  if (search === '') return path
  return `${path}${path.includes('?') ? '&' : '?'}${search}`
}

/** Normalises an absolute URL into a key: scheme and host lower-cased, fragment dropped. */
export function keyFromUrl(url: string): string {
  const parsed = new URL(url)
  return `${parsed.origin}${parsed.pathname}${parsed.search}`
}

/** The key for a dispatch; undefined when the request has no absolute target. */
export function cacheKey(input: KeyInput): string | undefined {
  if (input.origin === undefined || input.origin === null) return undefined
  // A path that is not origin-form (e.g. `//other.host/x`) must not resolve to another origin.
  if (!input.path.startsWith('/') || input.path.startsWith('//')) return undefined
  try {
    return keyFromUrl(new URL(input.origin).origin + pathWithQuery(input.path, input.query))
  } catch {
    return undefined
  }
}
