/**
 * Reading and copying header fields on the hot paths. Internal: not re-exported by the policy entry
 * point (its `fieldLines` returns a fresh array the caller may change).
 */
import type { Headers, HeaderValue } from './types.js'

/** The field lines of one header value: a string is one line, an array is several, anything else none. */
export function valueLines(value: HeaderValue): string[] {
  if (typeof value === 'string') return [value]
  if (Array.isArray(value)) return value.filter((line): line is string => typeof line === 'string')
  return []
}

const NO_LINES: readonly string[] = Object.freeze([])

/** A field's lines for reading only: one shared frozen empty list when the field is absent. */
export function linesOf(headers: Headers, name: string): readonly string[] {
  if (!Object.hasOwn(headers, name)) return NO_LINES
  return valueLines(headers[name])
}

/** Sets one field; a field named `__proto__` stays a field (assignment would set the prototype). */
export function setField(headers: Record<string, unknown>, name: string, value: unknown): void {
  if (name === '__proto__') {
    Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true })
  } else {
    headers[name] = value
  }
}

/** Adds to `target` the fields of `headers` not named in `excluded` (lower-case); arrays are copied. */
export function copyFields(target: Headers, headers: Headers, excluded: ReadonlySet<string>): Headers {
  for (const name of Object.keys(headers)) {
    const value = headers[name]
    if (value === undefined || excluded.has(name.toLowerCase())) continue
    setField(target, name, Array.isArray(value) ? [...value] : value)
  }
  return target
}

/** `base` with the `more` names added; `base` itself when it holds them all already. */
export function namesWith(base: ReadonlySet<string>, more: Iterable<string>): ReadonlySet<string> {
  let added: Set<string> | undefined
  for (const name of more) {
    if ((added ?? base).has(name)) continue
    added ??= new Set(base)
    added.add(name)
  }
  return added ?? base
}
