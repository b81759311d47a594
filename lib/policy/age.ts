import { parseHttpDate } from './dates.js'
import { linesOf } from './fields.js'
import { listMembers, singletonValue } from './headers.js'
import { MAX_DELTA_SECONDS, parseDeltaSeconds } from './syntax.js'
import type { Headers } from './types.js'

/** The timing facts §4.2.3 needs about a stored response. */
export interface AgeInput {
  headers: Headers
  requestTimeMs: number
  responseTimeMs: number
}

// RFC 9111 §5.1: Age is delta-seconds; the first member counts, an invalid value is ignored
export function ageValueSeconds(headers: Headers): number {
  if (linesOf(headers, 'age').length === 0) return 0
  const [first] = listMembers(headers, 'age')
  return (first === undefined ? undefined : parseDeltaSeconds(first)) ?? 0
}

// RFC 9111 §4.2.3 date_value: the Date field, or the response time when Date is absent or invalid
export function dateValueMs(headers: Headers, responseTimeMs: number): number {
  return parseHttpDate(singletonValue(headers, 'date'), responseTimeMs) ?? responseTimeMs
}

// RFC 9111 §4.2.3 corrected_initial_age: the age the response had when it was received
function correctedInitialAgeSeconds(stored: AgeInput): number {
  const apparentAgeSeconds = Math.max(
    0,
    (stored.responseTimeMs - dateValueMs(stored.headers, stored.responseTimeMs)) / 1000,
  )
  const responseDelaySeconds = (stored.responseTimeMs - stored.requestTimeMs) / 1000
  const correctedAgeValueSeconds = ageValueSeconds(stored.headers) + responseDelaySeconds
  return Math.max(apparentAgeSeconds, correctedAgeValueSeconds)
}

// RFC 9111 §4.2.3 current_age = corrected_initial_age + resident_time (seconds, float, never negative)
export function currentAgeSeconds(stored: AgeInput, nowMs: number): number {
  const residentTimeSeconds = (nowMs - stored.responseTimeMs) / 1000
  return Math.max(0, correctedInitialAgeSeconds(stored) + residentTimeSeconds)
}

// RFC 9111 §5.1: the Age sent is a whole number of seconds, capped like any delta-seconds (§1.2.2)
export function ageHeaderValue(ageSeconds: number): string {
  const seconds = Number.isNaN(ageSeconds)
    ? 0
    : Math.min(Math.max(0, Math.floor(ageSeconds)), MAX_DELTA_SECONDS)
  return String(seconds)
}
