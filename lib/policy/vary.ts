import { dateValueMs } from './age.js'
import { linesOf } from './fields.js'
import { listMembers, splitListMembers } from './headers.js'
import { TOKEN } from './syntax.js'
import type { Headers } from './types.js'

/** A stored variant as far as selection needs it. */
export interface VariantCandidate {
  varyValues: Record<string, string | null>
  headers: Headers
  responseTimeMs: number
}

/**
 * The Vary field names, lower-case, deduplicated and sorted; '*' when any member is '*' (RFC 9110
 * §12.5.5), or no field name (`Cookie Accept-Language`, `"Cookie"`): no request carries such a field,
 * so it would tell none apart.
 */
export function varyFieldNames(headers: Headers): string[] | '*' {
  if (linesOf(headers, 'vary').length === 0) return []
  const names = listMembers(headers, 'vary').map((name) => name.toLowerCase())
  if (names.some((name) => name === '*' || !TOKEN.test(name))) return '*'
  return [...new Set(names)].sort()
}

/** A Vary member that is neither '*' nor a field name (RFC 9110 §12.5.5). */
export function hasMalformedVary(headers: Headers): boolean {
  return listMembers(headers, 'vary').some((name) => name !== '*' && !TOKEN.test(name))
}

/**
 * Selecting fields whose values are case-insensitive lists compared by their members: content-codings
 * (RFC 9110 §8.4.1), charsets (§8.3.2) and language ranges (RFC 4647 §2) are case-insensitive.
 */
const MEMBER_LIST_FIELDS: ReadonlySet<string> = new Set([
  'accept-encoding',
  'accept-language',
  'accept-charset',
])

/**
 * Fields whose member order never matters: any content-coding served is one the client accepts.
 * Not Accept-Language or Accept-Charset: RFC 9110 §12.5.4 notes that origins may break ties between
 * equal q-values by list order, so `de, fr` and `fr, de` can select different representations.
 */
const UNORDERED_FIELDS: ReadonlySet<string> = new Set(['accept-encoding'])

/** A quoted-string (RFC 9110 §5.6.4); one left open runs to the end of the value. */
const QUOTED_STRING = /"(?:[^"\\]|\\.)*"?/
const QUOTED = new RegExp(QUOTED_STRING.source, 'g')

// RFC 9110 §5.6.3: whitespace is SP and HTAB only (not U+00A0, which a Latin-1 0xA0 byte decodes to);
// runs of it collapse to one SP, but inside a quoted-string every character counts
const WHITESPACE_OR_QUOTED = new RegExp(`${QUOTED_STRING.source}|[ \\t]+`, 'g')

function collapsedWhitespace(value: string): string {
  return value
    .replace(WHITESPACE_OR_QUOTED, (part) => (part.startsWith('"') ? part : ' '))
    .replace(/^ | $/g, '')
}

// RFC 9110 §5.6.6: whitespace around the `;` and `=` of parameters carries no meaning; tokens are
// case-insensitive here, a quoted-string (§5.6.4) is taken as it is
function normalisedMember(member: string): string {
  const collapsed = collapsedWhitespace(member)
  if (!collapsed.includes('"')) return normalisedTokens(collapsed)
  let normalised = ''
  let from = 0
  for (const quoted of collapsed.matchAll(QUOTED)) {
    normalised += normalisedTokens(collapsed.slice(from, quoted.index)) + quoted[0]
    from = quoted.index + quoted[0].length
  }
  return normalised + normalisedTokens(collapsed.slice(from))
}

function normalisedTokens(part: string): string {
  return part.replace(/ ?([;=]) ?/g, '$1').toLowerCase()
}

/** `gzip, BR` and `br,gzip` alike: members trimmed, normalised, empty ones dropped, joined by ','. */
function normalisedMemberList(lines: readonly string[], unordered: boolean): string {
  const members = splitListMembers(lines).map(normalisedMember)
  return (unordered ? members.sort() : members).join(',')
}

// RFC 9111 §4.1: selecting values may be normalised by combining lines and normalising whitespace,
// and by the syntax of the field (here: the member lists of MEMBER_LIST_FIELDS). Lines combine with
// a comma (RFC 9110 §5.3), Cookie's with "; " (RFC 9113 §8.2.3): `a=1, b=2` is one cookie
function normalisedValue(requestHeaders: Headers, name: string): string | null {
  const lines = linesOf(requestHeaders, name)
  if (lines.length === 0) return null
  if (MEMBER_LIST_FIELDS.has(name)) return normalisedMemberList(lines, UNORDERED_FIELDS.has(name))
  return collapsedWhitespace(lines.join(name === 'cookie' ? '; ' : ', '))
}

/** The normalised request values of the selecting fields (null = absent), keyed by lower-case name. */
export function varyValues(fieldNames: string[], requestHeaders: Headers): Record<string, string | null> {
  return Object.fromEntries(
    fieldNames.map((name) => name.toLowerCase()).map((name) => [name, normalisedValue(requestHeaders, name)]),
  )
}

/** A canonical string for a set of selecting values: '' without Vary, else JSON of sorted pairs. */
export function varyKey(values: Record<string, string | null>): string {
  // Object keys are unique, so two names never compare equal
  const pairs = Object.entries(values).sort(([a], [b]) => (a < b ? -1 : 1))
  return pairs.length === 0 ? '' : JSON.stringify(pairs)
}

// RFC 9111 §4.1: every selecting field of the stored request matches the new request (absent = absent)
export function variantMatches(
  stored: { varyValues: Record<string, string | null> },
  requestHeaders: Headers,
): boolean {
  const values = stored.varyValues
  return Object.keys(values).every((name) => normalisedValue(requestHeaders, name) === values[name])
}

/** Recency of a variant: its Date (or response time), then its response time as the tie-break. */
function isMoreRecent(candidate: VariantCandidate, best: VariantCandidate): boolean {
  const candidateDateMs = dateValueMs(candidate.headers, candidate.responseTimeMs)
  const bestDateMs = dateValueMs(best.headers, best.responseTimeMs)
  if (candidateDateMs !== bestDateMs) return candidateDateMs > bestDateMs
  return candidate.responseTimeMs > best.responseTimeMs
}

// RFC 9111 §4.1: of several matching stored responses, use the most recent one
export function selectVariant<T extends VariantCandidate>(
  entries: T[],
  requestHeaders: Headers,
): T | undefined {
  let selected: T | undefined
  for (const entry of entries) {
    if (!variantMatches(entry, requestHeaders)) continue
    if (selected === undefined || isMoreRecent(entry, selected)) selected = entry
  }
  return selected
}
