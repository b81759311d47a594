import { parseHttpDate } from './dates.js'
import { entityTagOf, strongMatch } from './entity-tag.js'
import { linesOf } from './fields.js'
import { singletonValue, splitListMembers } from './headers.js'
import type { Headers } from './types.js'

/**
 * How to answer a request's Range from a stored complete response (RFC 9110 §14): 'none' without
 * Range, 'full' when Range is ignored (200), 'partial' (206; `end` inclusive), 'unsatisfiable' (416).
 */
export type RangeOutcome =
  | { kind: 'none' }
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' }

type ByteRangeSpec =
  | { kind: 'int'; first: number; last: number | undefined }
  | { kind: 'suffix'; length: number }

const NONE: RangeOutcome = { kind: 'none' }
const FULL: RangeOutcome = { kind: 'full' }
const UNSATISFIABLE: RangeOutcome = { kind: 'unsatisfiable' }

// RFC 9110 §14.1.2: int-range = first-pos "-" [ last-pos ]; suffix-range = "-" suffix-length.
// Positions too long for a number become Infinity, which compares as beyond any size.
const INT_RANGE = /^(\d+)-(\d*)$/
const SUFFIX_RANGE = /^-(\d+)$/

// RFC 9110 §14.1.2: an int-range whose last-pos is less than its first-pos is invalid
function parseRangeSpec(spec: string): ByteRangeSpec | undefined {
  const suffix = SUFFIX_RANGE.exec(spec)
  if (suffix) return { kind: 'suffix', length: Number(suffix[1]) }
  const int = INT_RANGE.exec(spec)
  if (!int) return undefined
  const [, firstPos = '', lastPos = ''] = int
  const first = Number(firstPos)
  const last = lastPos === '' ? undefined : Number(lastPos)
  return last !== undefined && last < first ? undefined : { kind: 'int', first, last }
}

// RFC 9110 §14.1.1: ranges-specifier = range-unit "=" range-set, the unit case-insensitive. Only one
// byte range is served: other units, several ranges (no multipart) and malformed ones → undefined,
// and the Range is ignored (§14.2)
function singleByteRange(value: string): ByteRangeSpec | undefined {
  const equals = value.indexOf('=')
  if (equals === -1 || value.slice(0, equals).trim().toLowerCase() !== 'bytes') return undefined
  const [spec, ...others] = splitListMembers([value.slice(equals + 1)])
  return spec !== undefined && others.length === 0 ? parseRangeSpec(spec) : undefined
}

// RFC 9110 §14.1.1: an int-range is satisfiable when first-pos < length (last-pos is clamped to
// length − 1); a suffix-range when its length is non-zero (longer than the body = the whole body).
// Of an empty body, a non-zero suffix is satisfiable, yet no 206 can carry it: the Range is ignored (§14.2)
function resolveRange(spec: ByteRangeSpec, sizeBytes: number): RangeOutcome {
  if (spec.kind === 'suffix') {
    if (spec.length === 0) return UNSATISFIABLE
    if (sizeBytes === 0) return FULL
    return { kind: 'partial', start: Math.max(0, sizeBytes - spec.length), end: sizeBytes - 1 }
  }
  if (spec.first >= sizeBytes) return UNSATISFIABLE
  return { kind: 'partial', start: spec.first, end: Math.min(spec.last ?? sizeBytes, sizeBytes - 1) }
}

/** Two-digit (RFC 850) years in If-Range and Last-Modified are both placed relative to 2000. */
const DATE_REFERENCE_MS = Date.UTC(2000, 0, 1)

/** RFC 9110 §8.8.2.2: a Last-Modified at least this long before the response's Date is a strong validator. */
const STRONG_LAST_MODIFIED_MS = 60_000

// RFC 9110 §8.8.2.2: a cache may take the stored Last-Modified as strong only when it is at least 60 s
// before the stored Date (a second change within the same second could not be told apart)
function isStrongLastModified(lastModifiedMs: number, storedHeaders: Headers): boolean {
  const dateMs = parseHttpDate(singletonValue(storedHeaders, 'date'), DATE_REFERENCE_MS)
  return dateMs !== undefined && lastModifiedMs <= dateMs - STRONG_LAST_MODIFIED_MS
}

// RFC 9110 §13.1.5: an entity-tag must match the stored ETag by strong comparison (a weak tag never
// does); an HTTP-date must equal the stored Last-Modified, which must be a strong validator. Several
// lines or an invalid date never match.
function ifRangeMatches(requestHeaders: Headers, storedHeaders: Headers): boolean {
  const lines = linesOf(requestHeaders, 'if-range')
  if (lines.length === 0) return true
  const value = lines.length === 1 ? lines[0]?.trim() : undefined
  if (value === undefined) return false
  if (value.startsWith('"') || value.startsWith('W/')) {
    const storedTag = entityTagOf(storedHeaders)
    return storedTag !== undefined && strongMatch(value, storedTag)
  }
  const dateMs = parseHttpDate(value, DATE_REFERENCE_MS)
  const lastModified = singletonValue(storedHeaders, 'last-modified')
  if (dateMs === undefined || dateMs !== parseHttpDate(lastModified, DATE_REFERENCE_MS)) return false
  return isStrongLastModified(dateMs, storedHeaders)
}

function isValidSize(sizeBytes: number): boolean {
  return Number.isSafeInteger(sizeBytes) && sizeBytes >= 0
}

/**
 * Evaluates the request's Range against a stored complete response of `sizeBytes` (RFC 9110 §14.2,
 * §13.2.2 step 5): 'none' without Range; 'full' when Range is ignored (not one valid byte range, or
 * If-Range does not match, or an invalid size); else 'partial' or 'unsatisfiable'. For GET only
 * (§14.2). Never throws.
 */
export function evaluateRange(
  requestHeaders: Headers,
  sizeBytes: number,
  storedHeaders: Headers,
): RangeOutcome {
  const lines = linesOf(requestHeaders, 'range')
  if (lines.length === 0) return NONE
  if (!isValidSize(sizeBytes) || !ifRangeMatches(requestHeaders, storedHeaders)) return FULL
  const [line, ...others] = lines
  const spec = line !== undefined && others.length === 0 ? singleByteRange(line) : undefined
  return spec === undefined ? FULL : resolveRange(spec, sizeBytes)
}

// RFC 9110 §14.4: the Content-Range of a 206 (`bytes 0-99/1000`) or of a 416 (`bytes */1000`);
// 'none' and 'full' outcomes have no Content-Range: the empty string
export function contentRangeValue(outcome: RangeOutcome, sizeBytes: number): string {
  if (outcome.kind === 'partial') return `bytes ${outcome.start}-${outcome.end}/${sizeBytes}`
  return outcome.kind === 'unsatisfiable' ? `bytes */${sizeBytes}` : ''
}
