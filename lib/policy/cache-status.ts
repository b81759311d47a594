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

function integerParameter(name: string, value: number | undefined): string | undefined {
  const integer = value === undefined ? undefined : sfInteger(value)
  return integer === undefined ? undefined : `${name}=${integer}`
}

/**
 * One Cache-Status list member (RFC 9211 §2): the cache name, then its parameters in the order
 * hit, fwd, fwd-status, ttl, stored, collapsed, key, detail; e.g. `name; fwd=stale; fwd-status=304`.
 */
export function formatCacheStatus(cacheName: string, params: CacheStatusParams): string {
  const parameters = [
    params.hit === true ? 'hit' : undefined,
    params.fwd === undefined ? undefined : `fwd=${tokenOrString(params.fwd)}`,
    integerParameter('fwd-status', params.fwdStatus),
    integerParameter('ttl', params.ttlSeconds),
    params.stored === true ? 'stored' : undefined,
    params.collapsed === true ? 'collapsed' : undefined,
    params.key === undefined ? undefined : `key=${sfString(params.key)}`,
    params.detail === undefined ? undefined : `detail=${tokenOrString(params.detail)}`,
  ]
  return [tokenOrString(cacheName), ...parameters.filter((parameter) => parameter !== undefined)].join('; ')
}
