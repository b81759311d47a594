import { singletonValue } from './headers.js'
import type { Headers } from './types.js'

/** A response's ETag (trimmed), when there is a non-empty one. */
export function entityTagOf(headers: Headers): string | undefined {
  const etag = singletonValue(headers, 'etag')
  return etag === '' ? undefined : etag
}

// RFC 9110 §8.8.3: entity-tag = [ weak ] opaque-tag, weak = %s"W/" (case-sensitive)
export function isWeakTag(tag: string): boolean {
  return tag.startsWith('W/')
}

/** A response's ETag when it is strong (RFC 9110 §8.8.1: the same bytes), else undefined. */
export function strongEntityTagOf(headers: Headers): string | undefined {
  const etag = entityTagOf(headers)
  return etag === undefined || isWeakTag(etag) ? undefined : etag
}

function opaqueTag(tag: string): string {
  return isWeakTag(tag) ? tag.slice(2) : tag
}

// RFC 9110 §8.8.3.2: weak comparison — the opaque-tags match, either or both may be weak
export function weakMatch(a: string, b: string): boolean {
  return opaqueTag(a) === opaqueTag(b)
}

// RFC 9110 §8.8.3.2: strong comparison — neither is weak and both are identical
export function strongMatch(a: string, b: string): boolean {
  return !isWeakTag(a) && !isWeakTag(b) && a === b
}
