import { copyFields, linesOf, namesWith } from './fields.js'
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

/** `base` with the fields `headers`' Connection names added; `base` itself when there is no Connection field. */
export function withConnectionNominated(base: ReadonlySet<string>, headers: Headers): ReadonlySet<string> {
  if (linesOf(headers, 'connection').length === 0) return base
  return namesWith(base, connectionNominatedFields(headers))
}

/** Copies `headers` without the named (lower-case) fields; arrays are copied, undefined values dropped. */
export function withoutFields(headers: Headers, excluded: ReadonlySet<string>): Headers {
  return copyFields({}, headers, excluded)
}
