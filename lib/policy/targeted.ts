import { linesOf } from './fields.js'
import { splitListMembers } from './headers.js'
import { withoutFields } from './hop-by-hop.js'
import type { Headers } from './types.js'

// RFC 9213 §2.2: targeted fields are RFC 8941 Dictionaries. Simplified check, one member:
// key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ), optionally "=" and a bare
// item written as a token, number or quoted-string; parameters (";") are not accepted.
const DICTIONARY_MEMBER =
  /^[a-z*][a-z0-9_\-.*]*(?:=(?:[!#$%&'*+\-.^_`|~0-9A-Za-z:/]+|"(?:[^"\\]|\\[\\"])*"))?$/

// RFC 9213 §2.2: an empty field, or one that fails to parse, is ignored as if absent
function isValidTargetedField(lines: readonly string[]): boolean {
  const members = splitListMembers(lines)
  return members.length > 0 && members.every((member) => DICTIONARY_MEMBER.test(member))
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
    const lines = linesOf(headers, name.toLowerCase())
    if (isValidTargetedField(lines)) return withTargetedControl(headers, lines)
  }
  return headers
}
