import { BoundedMemo } from './bounded-memo.js'
import { linesOf, valueLines } from './fields.js'
import { listMembers, splitListMembers } from './headers.js'
import { parseDeltaSeconds, TOKEN, unquote } from './syntax.js'
import type { CacheControl, Headers, HeaderValue } from './types.js'

/** One directive: `value` is undefined for the bare form, the unquoted argument otherwise. */
interface Directive {
  name: string
  value: string | undefined
}

type ApplyDirective = (directives: CacheControl, value: string | undefined) => void

// RFC 9111 §5.2: `token [ "=" ( token / quoted-string ) ]`, names case-insensitive
function parseDirective(member: string): Directive {
  const equals = member.indexOf('=')
  if (equals === -1) return { name: member.toLowerCase(), value: undefined }
  const name = member.slice(0, equals).trim().toLowerCase()
  return { name, value: unquote(member.slice(equals + 1).trim()) }
}

/** RFC 9110 §5.6.2: a token; §5.6.4: a quoted-string. */
const QUOTED_STRING = /^"(?:[^"\\]|\\.)*"$/
const TRAILING_SEMICOLONS = /[\s;]+$/

// RFC 9111 §5.2: a directive is `token [ "=" ( token / quoted-string ) ]` (whitespace around "=" and an
// empty argument, which each directive's rule handles, are tolerated)
function isWellFormed(member: string): boolean {
  const equals = member.indexOf('=')
  if (equals === -1) return TOKEN.test(member)
  const argument = member.slice(equals + 1).trim()
  const wellFormedArgument = argument === '' || TOKEN.test(argument) || QUOTED_STRING.test(argument)
  return TOKEN.test(member.slice(0, equals).trim()) && wellFormedArgument
}

// RFC 9111 §4.2.1: an invalid freshness value means the response is stale (lifetime 0)
function freshnessSeconds(value: string | undefined): number {
  return (value === undefined ? undefined : parseDeltaSeconds(value)) ?? 0
}

/** A delta-seconds argument, or undefined when it is missing or invalid (the directive is then ignored). */
function optionalSeconds(value: string | undefined): number | undefined {
  return value === undefined ? undefined : parseDeltaSeconds(value)
}

// RFC 9111 §5.2.1.2: bare `max-stale` accepts any staleness
function maxStaleSeconds(value: string | undefined): number | undefined {
  return value === undefined ? Number.POSITIVE_INFINITY : parseDeltaSeconds(value)
}

type SecondsKey =
  | 'maxAgeSeconds'
  | 'sMaxAgeSeconds'
  | 'maxStaleSeconds'
  | 'minFreshSeconds'
  | 'staleWhileRevalidateSeconds'
  | 'staleIfErrorSeconds'

/**
 * Records a time directive; a repeated one keeps the most restrictive value (`pick`: Math.min for
 * limits, Math.max for min-fresh). An undefined (invalid) value is ignored.
 */
function combineSeconds(
  directives: CacheControl,
  key: SecondsKey,
  seconds: number | undefined,
  pick: (a: number, b: number) => number,
): void {
  if (seconds === undefined) return
  const current = directives[key]
  directives[key] = current === undefined ? seconds : pick(current, seconds)
}

// RFC 9111 §5.2.2.4, §5.2.2.7: `no-cache="a, b"` / `private="a, b"` name fields; the bare form wins.
// A qualified form naming no field (`private=`) is treated as bare, the safe reading.
function fieldNames(current: true | string[] | undefined, value: string | undefined): true | string[] {
  if (current === true || value === undefined) return true
  const names = splitListMembers([value]).map((name) => name.toLowerCase())
  if (names.length === 0) return true
  return [...new Set([...(current ?? []), ...names])]
}

type FlagKey =
  | 'noStore'
  | 'public'
  | 'mustRevalidate'
  | 'proxyRevalidate'
  | 'mustUnderstand'
  | 'immutable'
  | 'noTransform'
  | 'onlyIfCached'

/** A directive without argument; an argument given anyway is ignored. */
function flag(key: FlagKey): ApplyDirective {
  return (directives) => {
    directives[key] = true
  }
}

const DIRECTIVES = new Map<string, ApplyDirective>([
  ['max-age', (cc, value) => combineSeconds(cc, 'maxAgeSeconds', freshnessSeconds(value), Math.min)],
  ['s-maxage', (cc, value) => combineSeconds(cc, 'sMaxAgeSeconds', freshnessSeconds(value), Math.min)],
  ['max-stale', (cc, value) => combineSeconds(cc, 'maxStaleSeconds', maxStaleSeconds(value), Math.min)],
  ['min-fresh', (cc, value) => combineSeconds(cc, 'minFreshSeconds', optionalSeconds(value), Math.max)],
  [
    'stale-while-revalidate',
    (cc, value) => combineSeconds(cc, 'staleWhileRevalidateSeconds', optionalSeconds(value), Math.min),
  ],
  [
    'stale-if-error',
    (cc, value) => combineSeconds(cc, 'staleIfErrorSeconds', optionalSeconds(value), Math.min),
  ],
  [
    'no-cache',
    (cc, value) => {
      cc.noCache = fieldNames(cc.noCache, value)
    },
  ],
  [
    'private',
    (cc, value) => {
      cc.private = fieldNames(cc.private, value)
    },
  ],
  ['no-store', flag('noStore')],
  ['public', flag('public')],
  ['must-revalidate', flag('mustRevalidate')],
  ['proxy-revalidate', flag('proxyRevalidate')],
  ['must-understand', flag('mustUnderstand')],
  ['immutable', flag('immutable')],
  ['no-transform', flag('noTransform')],
  ['only-if-cached', flag('onlyIfCached')],
])

/**
 * Parses Cache-Control (RFC 9111 §5.2) from any number of field lines. Unknown directives are
 * ignored; malformed ones are handled as documented on each rule above. Never throws.
 */
export function parseCacheControl(value: HeaderValue): CacheControl {
  return parseLines(valueLines(value))
}

function parseLines(lines: readonly string[]): CacheControl {
  const directives: CacheControl = {}
  for (const listed of splitListMembers(lines)) {
    // a `;` ending a member (`max-age=600;`, a common configuration slip) hides nothing: it is dropped
    const member = listed.endsWith(';') ? listed.replace(TRAILING_SEMICOLONS, '') : listed
    if (!isWellFormed(member)) directives.malformed = true
    const { name, value: argument } = parseDirective(member)
    DIRECTIVES.get(name)?.(directives, argument)
  }
  return directives
}

/** Parsed directives of frozen header blocks (stored responses, read by every hit), by block. */
const parsedFrozen = new WeakMap<Headers, CacheControl>()

/**
 * The response's Cache-Control directives (RFC 9111 §5.2.2). A frozen header block cannot change,
 * so its directives are parsed once; treat the result as read-only.
 */
export function responseDirectives(headers: Headers): CacheControl {
  const known = parsedFrozen.get(headers)
  if (known) return known
  const lines = linesOf(headers, 'cache-control')
  const directives = lines.length === 1 ? parsedLine(lines[0] as string) : parseLines(lines)
  if (Object.isFrozen(headers)) parsedFrozen.set(headers, directives)
  return directives
}

/** Parsed one-line values, frozen: origins send the same few values again and again (a miss reads them ~6 times). */
const parsedLines = new BoundedMemo<string, CacheControl>(256)

function parsedLine(line: string): CacheControl {
  const known = parsedLines.get(line)
  if (known) return known
  const directives = parseCacheControl(line)
  for (const value of Object.values(directives)) if (Array.isArray(value)) Object.freeze(value)
  return parsedLines.set(line, Object.freeze(directives))
}

// RFC 9111 §5.4: without Cache-Control, a request's `Pragma: no-cache` means `Cache-Control: no-cache`
function pragmaNoCache(headers: Headers): boolean {
  if (linesOf(headers, 'pragma').length === 0) return false
  return listMembers(headers, 'pragma').some((member) => member.toLowerCase() === 'no-cache')
}

// RFC 9111 §5.2: a malformed request field (`no-store; no-cache`) may ask for what it fails to say:
// the request is neither answered from the cache unvalidated nor stored
function withMalformedRequestRule(directives: CacheControl): CacheControl {
  return directives.malformed === true ? { ...directives, noCache: true, noStore: true } : directives
}

/** What a request without Cache-Control or Pragma asks: nothing (one shared frozen object). */
const NO_DIRECTIVES: CacheControl = Object.freeze({})

/**
 * The request's Cache-Control directives (RFC 9111 §5.2.1), with the Pragma fallback of §5.4.
 * The empty result (no Cache-Control, no Pragma no-cache) is one shared frozen object; treat the result as read-only.
 */
export function requestDirectives(headers: Headers): CacheControl {
  const lines = linesOf(headers, 'cache-control')
  if (lines.length > 0) return withMalformedRequestRule(parseLines(lines))
  return pragmaNoCache(headers) ? { noCache: true } : NO_DIRECTIVES
}
