import { BoundedMemo } from './bounded-memo.js'

/** Why the cache forwarded the request (RFC 9211 §2.2). */
export type ForwardReason =
  | 'bypass'
  | 'method'
  | 'uri-miss'
  | 'vary-miss'
  | 'miss'
  | 'request'
  | 'stale'
  | 'partial'

/** The parameters of one Cache-Status member (RFC 9211 §2). Absent or false = not sent. */
export interface CacheStatusParams {
  hit?: boolean
  fwd?: ForwardReason
  fwdStatus?: number
  ttlSeconds?: number
  stored?: boolean
  collapsed?: boolean
  key?: string
  detail?: string
}

// RFC 8941 §3.3.4: sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" )
const SF_TOKEN = /^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*$/

// RFC 8941 §3.3.1: sf-integer has at most 15 digits
const MAX_SF_INTEGER = 999_999_999_999_999

/** Percent-encodes one character as UTF-8 (lone surrogates become U+FFFD). */
function percentEncoded(char: string): string {
  return [...new TextEncoder().encode(char)]
    .map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`)
    .join('')
}

// RFC 8941 §3.3.3: sf-string holds printable ASCII, with \ and " escaped; other characters are
// percent-encoded here so the header stays valid
function sfString(value: string): string {
  let result = '"'
  for (const char of value) {
    const code = char.charCodeAt(0)
    if (char === '\\' || char === '"') result += `\\${char}`
    else if (code < 0x20 || code > 0x7e) result += percentEncoded(char)
    else result += char
  }
  return `${result}"`
}

/** A token when the value is one, else an sf-string. */
function tokenOrString(value: string): string {
  return SF_TOKEN.test(value) ? value : sfString(value)
}

/** An sf-integer: truncated toward zero and clamped to the 15-digit range; NaN → undefined. */
function sfInteger(value: number): string | undefined {
  if (Number.isNaN(value)) return undefined
  const clamped = Math.min(MAX_SF_INTEGER, Math.max(-MAX_SF_INTEGER, Math.trunc(value)))
  return String(clamped === 0 ? 0 : clamped)
}

function integerParameter(name: string, value: number | undefined): string {
  const integer = value === undefined ? undefined : sfInteger(value)
  return integer === undefined ? '' : `; ${name}=${integer}`
}

/** The cache names seen, as sf-tokens or sf-strings (a cache formats its own name on every response). */
const formattedNames = new BoundedMemo<string, string>(16)

function formattedName(cacheName: string): string {
  return formattedNames.get(cacheName) ?? formattedNames.set(cacheName, tokenOrString(cacheName))
}

/**
 * One Cache-Status list member (RFC 9211 §2): the cache name, then its parameters in the order
 * hit, fwd, fwd-status, ttl, stored, collapsed, key, detail; e.g. `name; fwd=stale; fwd-status=304`.
 */
export function formatCacheStatus(cacheName: string, params: CacheStatusParams): string {
  let member = formattedName(cacheName)
  if (params.hit === true) member += '; hit'
  if (params.fwd !== undefined) member += `; fwd=${tokenOrString(params.fwd)}`
  member += integerParameter('fwd-status', params.fwdStatus)
  member += integerParameter('ttl', params.ttlSeconds)
  if (params.stored === true) member += '; stored'
  if (params.collapsed === true) member += '; collapsed'
  if (params.key !== undefined) member += `; key=${sfString(params.key)}`
  if (params.detail !== undefined) member += `; detail=${tokenOrString(params.detail)}`
  return member
}
