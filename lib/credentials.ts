import { createHmac, randomBytes } from 'node:crypto'
import type { Headers } from './policy/types.js'

/** This process's key: a tag names credentials without revealing them, and means nothing to another process. */
const TAG_KEY = randomBytes(32)

/**
 * A tag of the request's Authorization (RFC 9111 §3.5), equal for equal credentials within this
 * process: an entry kept for one user's request is told apart from another's. Undefined without one.
 */
export function credentialTag(headers: Headers): string | undefined {
  const authorization = headers.authorization
  if (authorization === undefined) return undefined
  return createHmac('sha256', TAG_KEY).update(String(authorization)).digest('base64url').slice(0, 22)
}

/** The entry was kept for no credentials, or for the request's own (RFC 9111 §3.5). */
export function keptForRequest(entry: { authorized?: string }, headers: Headers): boolean {
  return entry.authorized === undefined || entry.authorized === credentialTag(headers)
}
