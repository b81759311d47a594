import { withoutClientConditionals } from './conditional.js'
import { formatHttpDate, parseHttpDate } from './dates.js'
import { entityTagOf, isWeakTag, strongMatch, weakMatch } from './entity-tag.js'
import { copyFields, linesOf } from './fields.js'
import { singletonValue } from './headers.js'
import { HOP_BY_HOP_FIELDS, withConnectionNominated, withoutFields } from './hop-by-hop.js'
import type { Headers, ResponseInfo, StoredResponse } from './types.js'

/** The Last-Modified in epoch ms, when valid; `referenceMs` places RFC 850 two-digit years. */
function lastModifiedMs(headers: Headers, referenceMs: number): number | undefined {
  return parseHttpDate(singletonValue(headers, 'last-modified'), referenceMs)
}

/** Any reference time gives the same validity for a two-digit year; this one keeps the check pure. */
const VALIDITY_REFERENCE_MS = Date.UTC(2000, 0, 1)

/** Whether the response carries a validator: an ETag or a valid Last-Modified (RFC 9110 §8.8). */
export function hasValidator(headers: Headers): boolean {
  return entityTagOf(headers) !== undefined || lastModifiedMs(headers, VALIDITY_REFERENCE_MS) !== undefined
}

// RFC 9111 §4.3.1: validate with the stored ETag (If-None-Match) and Last-Modified
// (If-Modified-Since, sent as an IMF-fixdate per RFC 9110 §5.6.7); both when both exist
export function conditionalHeaders(stored: StoredResponse): Record<string, string> {
  const conditions: Record<string, string> = {}
  const etag = entityTagOf(stored.headers)
  if (etag !== undefined) conditions['if-none-match'] = etag
  const modifiedMs = lastModifiedMs(stored.headers, stored.responseTimeMs)
  if (modifiedMs !== undefined) conditions['if-modified-since'] = formatHttpDate(modifiedMs)
  return conditions
}

/** Whether two Last-Modified values name the same moment (or are the same text when unparsable). */
function sameLastModified(stored: string | undefined, received: string, referenceMs: number): boolean {
  if (stored === undefined) return false
  const storedMs = parseHttpDate(stored, referenceMs)
  return storedMs !== undefined ? storedMs === parseHttpDate(received, referenceMs) : stored === received
}

// RFC 9111 §4.3.4: a 304 freshens the stored response its validator identifies; a strong one
// identifies only a response with the same strong validator (a weak stored tag is another)
export function notModifiedMatches(stored: StoredResponse, notModified: ResponseInfo): boolean {
  const receivedEtag = entityTagOf(notModified.headers)
  if (receivedEtag !== undefined) {
    const storedEtag = entityTagOf(stored.headers)
    if (storedEtag === undefined) return false
    return isWeakTag(receivedEtag)
      ? weakMatch(receivedEtag, storedEtag)
      : strongMatch(receivedEtag, storedEtag)
  }
  const receivedLastModified = singletonValue(notModified.headers, 'last-modified')
  if (receivedLastModified === undefined) return true
  const storedLastModified = singletonValue(stored.headers, 'last-modified')
  return sameLastModified(storedLastModified, receivedLastModified, stored.responseTimeMs)
}

// RFC 9111 §3.2 / §4.3.4: fields a 304 never replaces. Hop-by-hop and Connection-nominated fields
// (not stored, §3.1); Content-Length (named by §3.2); Content-Encoding and Content-Range, which the
// stored body depends on and a 304 has no body to match ("fields the stored response depends on").
const NEVER_FRESHENED: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP_FIELDS,
  'content-length',
  'content-encoding',
  'content-range',
])

// RFC 9111 §4.3.4: a strong validator in the 304 identifies every stored response with the same
// strong validator for update (weak ones only the response that was validated)
export function sameStrongValidator(stored: StoredResponse, notModified: ResponseInfo): boolean {
  const receivedEtag = entityTagOf(notModified.headers)
  const storedEtag = entityTagOf(stored.headers)
  return receivedEtag !== undefined && storedEtag !== undefined && strongMatch(receivedEtag, storedEtag)
}

/**
 * The stored header fields updated with a 304's fields (RFC 9111 §3.2, §4.3.4): each field the 304
 * carries replaces all stored lines of that field, except the fields in NEVER_FRESHENED. Callers
 * storing the result should pass it through `headersToStore` (qualified no-cache / private).
 */
export function freshenedHeaders(storedHeaders: Headers, notModifiedHeaders: Headers): Headers {
  const excluded = withConnectionNominated(NEVER_FRESHENED, notModifiedHeaders)
  const replaced = new Set<string>()
  for (const name of Object.keys(notModifiedHeaders)) {
    const lowerName = name.toLowerCase()
    if (notModifiedHeaders[name] !== undefined && !excluded.has(lowerName)) replaced.add(lowerName)
  }
  return copyFields(withoutFields(storedHeaders, replaced), notModifiedHeaders, excluded)
}

/**
 * The times of freshened fields are the validating exchange's, not the stored one's (RFC 9111 §4.2.3,
 * §4.3.4): a validating response without Age or Date drops the stored one, so its age counts from when
 * it arrived, as for any response without them. Else the entry stays as old as before.
 */
export function withValidationTimes(freshened: Headers, validating: Headers): Headers {
  const hasOwn = (name: string) => Object.keys(validating).some((field) => field.toLowerCase() === name)
  if (hasOwn('age') && hasOwn('date')) return freshened
  const headers: Headers = { ...freshened }
  if (!hasOwn('age')) delete headers.age
  if (!hasOwn('date')) delete headers.date
  return headers
}

const CONDITIONAL_FIELDS = [
  'if-none-match',
  'if-modified-since',
  'if-match',
  'if-unmodified-since',
  'if-range',
]

/** Whether the client's request is itself conditional (RFC 9110 §13.1). */
export function isClientConditional(headers: Headers): boolean {
  return CONDITIONAL_FIELDS.some((name) => linesOf(headers, name).length > 0)
}

/** Fields a background revalidation does not repeat: it wants the whole, current response. */
const CALLER_ONLY_FIELDS = ['range', 'if-range']

/** The caller's headers with our validators in place of its own (RFC 9111 §4.3.1–§4.3.2). */
export function revalidationHeaders(
  requestHeaders: Headers,
  stored: StoredResponse,
  background: boolean,
): Record<string, string | string[]> {
  // A copy: withoutClientConditionals leaves out undefined values.
  const headers = withoutClientConditionals(requestHeaders) as Record<string, string | string[]>
  if (background) for (const name of CALLER_ONLY_FIELDS) delete headers[name]
  return Object.assign(headers, conditionalHeaders(stored))
}
