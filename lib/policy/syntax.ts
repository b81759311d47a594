/** The largest delta-seconds value a cache keeps; larger values become this (RFC 9111 §1.2.2). */
export const MAX_DELTA_SECONDS = 2147483648

const DELTA_SECONDS = /^\d+$/

/** RFC 9110 §5.6.2: `token = 1*tchar`, the form of a field name (§5.1), a method (§9.1), a directive name. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** Parses `delta-seconds = 1*DIGIT`; anything else → undefined. Overflow → 2^31 (RFC 9111 §1.2.2). */
export function parseDeltaSeconds(value: string): number | undefined {
  if (!DELTA_SECONDS.test(value)) return undefined
  return Math.min(Number(value), MAX_DELTA_SECONDS)
}

/**
 * Splits `value` at every `separator` that is not inside a quoted-string (RFC 9110 §5.6.1, §5.6.4).
 * An unterminated quoted-string runs to the end of the value.
 */
export function splitOutsideQuotes(value: string, separator: string): string[] {
  if (!value.includes('"')) return value.split(separator)
  const parts: string[] = []
  let start = 0
  let inQuotes = false
  for (let index = 0; index < value.length; index++) {
    const char = value.charAt(index)
    if (inQuotes && char === '\\') index++
    else if (char === '"') inQuotes = !inQuotes
    else if (!inQuotes && char === separator) {
      parts.push(value.slice(start, index))
      start = index + 1
    }
  }
  parts.push(value.slice(start))
  return parts
}

/**
 * Removes the quotes and quoted-pair escapes of a quoted-string (RFC 9110 §5.6.4); a value that
 * does not start with a quote is returned as is. Text after the closing quote is dropped.
 */
export function unquote(value: string): string {
  if (!value.startsWith('"')) return value
  let result = ''
  for (let index = 1; index < value.length; index++) {
    const char = value.charAt(index)
    if (char === '"') return result
    if (char === '\\') index++
    result += char === '\\' ? value.charAt(index) : char
  }
  return result
}
