import { linesOf } from './fields.js'
import { splitListMembers } from './headers.js'
import { withoutFields } from './hop-by-hop.js'
import { splitOutsideQuotes } from './syntax.js'
import type { Headers } from './types.js'

// RFC 9213 §2.2: targeted fields are RFC 8941 Dictionaries. Simplified check, one member:
// key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ), optionally "=" and a bare
// item written as a token, number, quoted-string or Boolean (`?1`, `?0`); then any parameters
// (";" key ["=" bare item]), which no directive defines and which are ignored (RFC 8941 §3.1.2).
const KEY = '[a-z*][a-z0-9_\\-.*]*'
const BARE_ITEM = `(?:[!#$%&'*+\\-.^_\`|~0-9A-Za-z:/]+|"(?:[^"\\\\]|\\\\[\\\\"])*"|\\?[01])`
const DICTIONARY_MEMBER = new RegExp(`^(${KEY})(?:=(${BARE_ITEM}))?((?:; *${KEY}(?:=${BARE_ITEM})?)*)$`)

/** RFC 8941 §4.2.2: a Dictionary has no empty member (`no-store,` fails to parse); an empty line is no field. */
function hasEmptyMember(line: string): boolean {
  return line.trim() !== '' && splitOutsideQuotes(line, ',').some((part) => part.trim() === '')
}

/**
 * A member as a Cache-Control directive. RFC 9213 §2.2: a directive without a value is a Boolean
 * true, so `no-store=?1` is `no-store`; one whose value is false breaks that constraint and is not
 * used ('' then).
 */
function directiveOf(match: RegExpExecArray): string {
  const [, key, value] = match
  if (value === undefined || value === '?1') return key as string
  return value === '?0' ? '' : `${key}=${value}`
}

/**
 * RFC 9213 §2.2: the field's lines as Cache-Control lines, parameters and false members dropped;
 * undefined for an empty field or one that fails to parse (ignored as if absent).
 */
function targetedLines(lines: readonly string[]): readonly string[] | undefined {
  if (lines.some(hasEmptyMember)) return undefined
  const members = splitListMembers(lines)
  if (members.length === 0) return undefined
  const matches = members.map((member) => DICTIONARY_MEMBER.exec(member))
  if (matches.some((match) => match === null)) return undefined
  const asIs = (match: RegExpExecArray | null) => match?.[3] === '' && !match[2]?.startsWith('?')
  if (matches.every(asIs)) return lines
  const directives = (matches as RegExpExecArray[]).map(directiveOf).filter((directive) => directive !== '')
  return [directives.join(', ')]
}

const REPLACED_FIELDS: ReadonlySet<string> = new Set(['cache-control', 'expires'])

/** A copy of `headers` whose Cache-Control is the targeted field's lines, without Expires. */
function withTargetedControl(headers: Headers, lines: readonly string[]): Headers {
  const view = withoutFields(headers, REPLACED_FIELDS)
  view['cache-control'] = lines.length === 1 ? lines[0] : [...lines]
  return view
}

/**
 * The response headers as this cache must read them (RFC 9213 §2.1): the first target field (in
 * `targetFields` order, lower-case names such as 'cdn-cache-control') with a valid, non-empty value
 * replaces Cache-Control, and Expires is ignored. Without one, `headers` itself is returned.
 * Use the view for policy decisions only; the response keeps its own header fields.
 */
export function targetedView(headers: Headers, targetFields: readonly string[]): Headers {
  for (const name of targetFields) {
    const lines = targetedLines(linesOf(headers, name.toLowerCase()))
    if (lines) return withTargetedControl(headers, lines)
  }
  return headers
}
