import { splitOutsideQuotes } from './syntax.js'
import type { Headers, HeaderValue } from './types.js'

/** The field lines of one header value: a string is one line, an array is several, anything else none. */
export function valueLines(value: HeaderValue): string[] {
  if (typeof value === 'string') return [value]
  if (Array.isArray(value)) return value.filter((line): line is string => typeof line === 'string')
  return []
}

/** All field lines for a lower-case field name (own properties only, so `constructor` is not a field). */
export function fieldLines(headers: Headers, name: string): string[] {
  if (!Object.hasOwn(headers, name)) return []
  return valueLines(headers[name])
}

/** The members of comma-separated lines, trimmed, empty members dropped (RFC 9110 §5.6.1). */
export function splitListMembers(lines: string[]): string[] {
  const members: string[] = []
  for (const line of lines) {
    for (const part of splitOutsideQuotes(line, ',')) {
      const member = part.trim()
      if (member !== '') members.push(member)
    }
  }
  return members
}

/** List members across all lines of a field (RFC 9110 §5.6.1); commas in quoted strings do not split. */
export function listMembers(headers: Headers, name: string): string[] {
  return splitListMembers(fieldLines(headers, name))
}

/** The first line of a singleton field, trimmed (Date, Expires, Last-Modified, ETag). */
export function singletonValue(headers: Headers, name: string): string | undefined {
  return fieldLines(headers, name)[0]?.trim()
}
