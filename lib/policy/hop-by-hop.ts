import { listMembers } from './headers.js'
import type { Headers } from './types.js'

/** Connection-specific fields a cache never stores or forwards (RFC 9110 §7.6.1, RFC 9111 §3.1). */
export const HOP_BY_HOP_FIELDS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
  'proxy-authenticate',
  'proxy-authentication-info',
  'proxy-authorization',
  'trailer',
])

// RFC 9110 §7.6.1: fields named in Connection are connection-specific too
export function connectionNominatedFields(headers: Headers): Set<string> {
  return new Set(listMembers(headers, 'connection').map((name) => name.toLowerCase()))
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

/** Copies `headers` without the named (lower-case) fields; arrays are copied, undefined values dropped. */
export function withoutFields(headers: Headers, excluded: ReadonlySet<string>): Headers {
  return copyFields({}, headers, excluded)
}

/** Adds to `target` the fields of `headers` not named in `excluded` (lower-case), as withoutFields copies them. */
export function copyFields(target: Headers, headers: Headers, excluded: ReadonlySet<string>): Headers {
  for (const name of Object.keys(headers)) {
    const value = headers[name]
    if (value === undefined || excluded.has(name.toLowerCase())) continue
    const copy = Array.isArray(value) ? [...value] : value
    // A field named `__proto__` is kept as a field (assignment would set the prototype).
    if (name === '__proto__')
      Object.defineProperty(target, name, {
        value: copy,
        enumerable: true,
        writable: true,
        configurable: true,
      })
    else target[name] = copy
  }
  return target
}
