import { setField } from './policy/fields.js'
import type { Headers } from './policy/types.js'

type RawHeaders = unknown

/** A value as undici sends it: null as an empty field line. */
function lineText(value: unknown): string {
  return value === null ? '' : String(value)
}

/** Adds one field line, keeping repeats as arrays (undici's parsed-header shape). */
function addField(out: Headers, name: string, value: unknown): void {
  if (value === undefined) return
  const lower = name.toLowerCase()
  const existing = Object.hasOwn(out, lower) ? out[lower] : undefined
  if (existing === undefined && typeof value === 'string') {
    setField(out, lower, value)
    return
  }
  const values = Array.isArray(value) ? value.map(lineText) : [lineText(value)]
  if (existing !== undefined)
    setField(out, lower, [...(Array.isArray(existing) ? existing : [existing]), ...values])
  else setField(out, lower, values.length === 1 ? (values[0] as string) : values)
}

/**
 * `opts` with its headers read once into an array when they are a one-shot iterable (a generator, which
 * undici accepts): the cache reads them, and undici must still find them to send.
 */
export function withReplayableHeaders<Opts extends { headers?: unknown }>(opts: Opts): Opts {
  const headers = opts.headers as { [Symbol.iterator]?: () => unknown } | null | undefined
  const iterate = typeof headers === 'object' && headers !== null ? headers[Symbol.iterator] : undefined
  if (typeof iterate !== 'function' || Array.isArray(headers) || iterate.call(headers) !== headers)
    return opts
  const items = [...(headers as unknown as Iterable<unknown>)]
  // undici takes an array as flat name, value, name, value...; items that are no pairs it refuses as
  // it would have: they are handed on as an iterable again
  if (!items.every((item) => Array.isArray(item) && item.length === 2))
    return { ...opts, headers: { [Symbol.iterator]: () => items[Symbol.iterator]() } }
  return { ...opts, headers: (items as unknown[][]).flat() }
}

/**
 * Request headers in every form undici accepts (object, flat array, array of pairs, iterable)
 * as lower-case names with arrays for repeats.
 */
export function normalizeHeaders(headers: RawHeaders): Headers {
  const out: Headers = {}
  if (headers === null || headers === undefined) return out
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const pair of headers as unknown[][]) addField(out, String(pair[0]), pair[1])
    } else {
      for (let i = 0; i + 1 < headers.length; i += 2) addField(out, String(headers[i]), headers[i + 1])
    }
    return out
  }
  if (typeof headers === 'object' && iteratedByUndici(headers)) {
    for (const [name, value] of headers as Iterable<[string, unknown]>) addField(out, name, value)
    return out
  }
  const fields = headers as Record<string, unknown>
  for (const name of Object.keys(fields)) addField(out, name, fields[name])
  return out
}

/** The fields that have a value, in the form undici takes for requests and handlers alike. */
export function definedFields(headers: Headers): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const name of Object.keys(headers)) {
    const value = headers[name]
    if (value !== undefined) setField(out, name, value)
  }
  return out
}

/**
 * Whether undici reads these headers as an iterable of pairs rather than as an object's fields: an own
 * Symbol.iterator, or an iterator function from a prototype other than Object's (undici's hasSafeIterator).
 */
export function iteratedByUndici(headers: object): boolean {
  if (Object.hasOwn(headers, Symbol.iterator)) return true
  const prototype = Object.getPrototypeOf(headers)
  const iterator = (headers as { [Symbol.iterator]?: unknown })[Symbol.iterator]
  return prototype !== null && prototype !== Object.prototype && typeof iterator === 'function'
}
