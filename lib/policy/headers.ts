import { linesOf, valueLines } from './fields.js'
import { splitOutsideQuotes } from './syntax.js'
import type { Headers } from './types.js'

export { valueLines }

/** All field lines for a lower-case field name (own properties only, so `constructor` is not a field), as a new array. */
export function fieldLines(headers: Headers, name: string): string[] {
  return Object.hasOwn(headers, name) ? valueLines(headers[name]) : []
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
  return splitListMembers(linesOf(headers, name))
}

/** The first line of a singleton field, trimmed (Date, Expires, Last-Modified, ETag). */
export function singletonValue(headers: Headers, name: string): string | undefined {
  return linesOf(headers, name)[0]?.trim()
}

// RFC 9110 §8.6: the body's length in bytes; undefined when the field is absent, empty or not a length
export function contentLengthBytes(headers: Headers): number | undefined {
  const value = singletonValue(headers, 'content-length')
  const length = Number(value)
  return value !== undefined && value !== '' && Number.isSafeInteger(length) && length >= 0
    ? length
    : undefined
}
