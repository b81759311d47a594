/**
 * The request options undici refuses when it sends a request (its Request checks, undici 7 and 8). The
 * cache hands such a request to undici as it is, so that it fails there with undici's own error whether
 * or not its URL is cached: a hit answered first would otherwise serve what a miss fails. Not
 * `maxRedirections`, which undici 7's redirect interceptor takes when it is composed inside the cache.
 */
import type { DispatchOptions } from './exchange.js'
import { TOKEN } from './policy/syntax.js'
import { iteratedByUndici } from './request-headers.js'

// RFC 9110 §5.5: a field value has no CR, LF, NUL or other control but HTAB
const NOT_FIELD_VALUE = /[^\t\x20-\x7e\x80-\xff]/
const NOT_PATH = /[^\u0021-\u00ff]/
/** Fields undici sets itself, or refuses (`expect`: 100-continue is not supported). */
const REFUSED_FIELDS: ReadonlySet<string> = new Set(['transfer-encoding', 'keep-alive', 'upgrade', 'expect'])

export function undiciRefuses(opts: DispatchOptions): boolean {
  const options = opts as DispatchOptions & Record<string, unknown>
  return (
    typeof options.method !== 'string' ||
    !TOKEN.test(options.method) ||
    badPath(options.path) ||
    (Boolean(options.query) && /[?#]/.test(options.path)) ||
    bodyRefused(options.body) ||
    badTimeout(options.headersTimeout) ||
    badTimeout(options.bodyTimeout) ||
    notBoolean(options.reset) ||
    notBoolean(options.expectContinue) ||
    options.throwOnError != null ||
    badTypeOfService(options.typeOfService) ||
    badHeaders(options.headers)
  )
}

function badPath(path: string): boolean {
  const absolute = path[0] === '/' || path.startsWith('http://') || path.startsWith('https://')
  return !absolute || NOT_PATH.test(path)
}

/** A body whose reading throws (a getter) is undici's to fail, as it reads it. */
function bodyRefused(body: unknown): boolean {
  try {
    return badBody(body)
  } catch {
    return true
  }
}

/** undici sends a string, bytes, a stream, an iterable (sync or async), a Blob or FormData (duck-typed as it does). */
function badBody(body: unknown): boolean {
  if (body == null || typeof body === 'string' || ArrayBuffer.isView(body) || body instanceof ArrayBuffer)
    return false
  const any = body as Record<string | symbol, unknown>
  if (typeof any[Symbol.iterator] === 'function' || typeof any[Symbol.asyncIterator] === 'function')
    return false
  if (body instanceof Blob) return false
  if (typeof body !== 'object') return true
  if (typeof any.pipe === 'function' && typeof any.on === 'function') return false
  const tag = any[Symbol.toStringTag]
  if (tag === 'Blob' || tag === 'File') return !hasMethod(any, 'stream') && !hasMethod(any, 'arrayBuffer')
  return !(tag === 'FormData' && FORM_DATA_METHODS.every((name) => hasMethod(any, name)))
}

const FORM_DATA_METHODS = ['append', 'delete', 'get', 'getAll', 'has', 'set']

function hasMethod(object: Record<string | symbol, unknown>, name: string): boolean {
  return typeof object[name] === 'function'
}

function badTimeout(value: unknown): boolean {
  return value != null && (!Number.isFinite(value) || (value as number) < 0)
}

function notBoolean(value: unknown): boolean {
  return value != null && typeof value !== 'boolean'
}

function badTypeOfService(value: unknown): boolean {
  return value != null && (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 255)
}

/** undici takes an object, a flat array of names and values, or an iterable of [name, value] pairs. */
function badHeaders(headers: unknown): boolean {
  if (headers == null) return false
  if (typeof headers !== 'object') return true
  const fields = new Fields()
  if (Array.isArray(headers)) {
    if (headers.length % 2 !== 0) return true
    for (let i = 0; i < headers.length; i += 2) if (fields.bad(headers[i], headers[i + 1])) return true
    return false
  }
  if (iteratedByUndici(headers)) {
    // an own Symbol.iterator that is no function: undici fails as it iterates
    if (typeof (headers as { [Symbol.iterator]?: unknown })[Symbol.iterator] !== 'function') return true
    for (const pair of headers as Iterable<unknown>) {
      if (!Array.isArray(pair) || pair.length !== 2 || fields.bad(pair[0], pair[1])) return true
    }
    return false
  }
  const record = headers as Record<string, unknown>
  for (const name of Object.keys(record)) if (fields.bad(name, record[name])) return true
  return false
}

/** One request's fields, checked one at a time (Host and Content-Length may come once). */
class Fields {
  readonly #seen = new Set<string>()

  /** undici sends a value that is not a string as its text (null as an empty one), a list as lines. */
  bad(name: unknown, value: unknown): boolean {
    if (value === undefined) return false
    if (typeof name !== 'string' || !TOKEN.test(name)) return true
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return true
    const values = Array.isArray(value) ? value : [value]
    if (values.some(badValue)) return true
    const lower = name.toLowerCase()
    if (REFUSED_FIELDS.has(lower)) return true
    // one line each; Content-Length digits, Connection tokens
    const single = Array.isArray(value) ? undefined : textOf(value)
    if (lower === 'host') return this.#again(lower) || single === undefined
    if (lower === 'content-length') return this.#again(lower) || !/^\d+$/.test(single ?? '')
    if (lower === 'connection') return single === undefined || !single.split(',').every(isToken)
    return false
  }

  /** True the second time a field that may come once comes. */
  #again(lower: string): boolean {
    const seen = this.#seen.has(lower)
    this.#seen.add(lower)
    return seen
  }
}

function badValue(value: unknown): boolean {
  if (value === null) return false
  // a symbol has no text (undici's template string throws)
  if (typeof value === 'object' || typeof value === 'symbol') return true
  return NOT_FIELD_VALUE.test(textOf(value))
}

function textOf(value: unknown): string {
  return value === null ? '' : String(value)
}

function isToken(text: string): boolean {
  return TOKEN.test(text.trim())
}
