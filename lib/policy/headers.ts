import { splitOutsideQuotes } from './syntax.js'
import type { Headers, HeaderValue } from './types.js'

/** The field lines of one header value: a string is one line, an array is several, anything else none. */
export function valueLines(value: HeaderValue): string[] {
  if (typeof value === 'string') return [value]
  if (Array.isArray(value)) return value.filter((line): line is string => typeof line === 'string')
  return []
}

const NO_LINES: readonly string[] = Object.freeze([])

/** All field lines for a lower-case field name (own properties only, so `constructor` is not a field). */
export function fieldLines(headers: Headers, name: string): readonly string[] {
  if (!Object.hasOwn(headers, name)) return NO_LINES
  return valueLines(headers[name])
}

/** The members of comma-separated lines, trimmed, empty members dropped (RFC 9110 §5.6.1). */
export function splitListMembers(lines: readonly string[]): string[] {
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

/** Sets one field; a field named `__proto__` stays a field (assignment would set the prototype). */
export function setField(headers: Record<string, unknown>, name: string, value: unknown): void {
  if (name === '__proto__') {
    Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true })
  } else {
    headers[name] = value
  }
}
