import { BoundedMemo } from './bounded-memo.js'

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec']
const MONTH = '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)'
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})'
const SHORT_DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)'
const LONG_DAY = '(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)'

// RFC 9110 §5.6.7. Case-insensitive: recipients are encouraged to be robust in parsing timestamps.
// The fixdate's zone may also be written as the Internet Message Format writes it (RFC 5322 §3.3:
// `+0000`, `-0100`; `UT`, `UTC`), as PHP's and Python's mail-date functions do; GMT is the only zone
// an HTTP sender may use, so no other name is read.
const MAIL_ZONE = 'UTC?|[+-]\\d{4}'
const IMF_FIXDATE = new RegExp(`^${SHORT_DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} (GMT|${MAIL_ZONE})$`, 'i')
const RFC850_DATE = new RegExp(`^${LONG_DAY}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`, 'i')
const ASCTIME_DATE = new RegExp(`^${SHORT_DAY} ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`, 'i')

interface DateParts {
  year: number
  monthIndex: number
  day: number
  hours: number
  minutes: number
  seconds: number
}

function isLeapYear(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
}

function daysInMonth(year: number, monthIndex: number): number {
  if (monthIndex === 1) return isLeapYear(year) ? 29 : 28
  return [3, 5, 8, 10].includes(monthIndex) ? 30 : 31
}

/** Epoch ms of a calendar date, or undefined when a field is out of range (second 60 = leap second). */
function toEpochMs(parts: DateParts): number | undefined {
  const { year, monthIndex, day, hours, minutes, seconds } = parts
  if (day < 1 || day > daysInMonth(year, monthIndex)) return undefined
  if (hours > 23 || minutes > 59 || seconds > 60) return undefined
  const date = new Date(0)
  date.setUTCFullYear(year, monthIndex, day)
  date.setUTCHours(hours, minutes, seconds, 0)
  const ms = date.getTime()
  return Number.isFinite(ms) ? ms : undefined
}

function monthIndexOf(name: string): number {
  return MONTHS.indexOf(name.toLowerCase())
}

function partsOf(year: string, month: string, day: string, time: string[]): DateParts {
  const [hours = 0, minutes = 0, seconds = 0] = time.map(Number)
  return { year: Number(year), monthIndex: monthIndexOf(month), day: Number(day), hours, minutes, seconds }
}

function addYears(ms: number, years: number): number {
  const date = new Date(ms)
  date.setUTCFullYear(date.getUTCFullYear() + years)
  return date.getTime()
}

// RFC 9110 §5.6.7: a two-digit year that appears more than 50 years in the future is the most
// recent past year with those digits; symmetrically, one 50+ years in the past is the next century.
function resolveTwoDigitYear(parts: DateParts, referenceMs: number): number | undefined {
  const referenceYear = new Date(referenceMs).getUTCFullYear()
  const year = referenceYear - (referenceYear % 100) + parts.year
  const ms = toEpochMs({ ...parts, year })
  if (ms === undefined) return undefined
  if (ms > addYears(referenceMs, 50)) return toEpochMs({ ...parts, year: year - 100 })
  if (ms <= addYears(referenceMs, -50)) return toEpochMs({ ...parts, year: year + 100 })
  return ms
}

/** Past what an HTTP-date's four-digit year can say (an offset may carry 9999-12-31 over). */
const YEAR_10000_MS = Date.UTC(10000, 0, 1)

/** A fixdate's zone written another way than `GMT` (see IMF_FIXDATE). */
const ZONE_NOT_GMT = new RegExp(`\\s(?:${MAIL_ZONE})$`, 'i')

/** RFC 5322 §3.3: a zone's offset from UTC, `+hhmm`/`-hhmm` (under a day), or 0 for a name meaning UTC. */
function zoneOffsetMs(zone: string): number | undefined {
  if (zone[0] !== '+' && zone[0] !== '-') return 0
  const hours = Number(zone.slice(1, 3))
  const minutes = Number(zone.slice(3, 5))
  if (hours > 23 || minutes > 59) return undefined
  return (zone[0] === '-' ? -1 : 1) * (hours * 60 + minutes) * 60_000
}

/**
 * IMF-fixdates parsed lately (a stored entry's Date is read on every hit; origins send about one new
 * date a second). Only these: they do not depend on `referenceMs`.
 */
const recentFixdates = new BoundedMemo<string, number>(64)

/**
 * Parses an HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, obsolete RFC 850 or asctime. Anything else
 * → undefined. `referenceMs` (default: now) places RFC 850 two-digit years; pass the response time.
 */
export function parseHttpDate(value: string | undefined, referenceMs?: number): number | undefined {
  if (value === undefined) return undefined
  const known = recentFixdates.get(value)
  if (known !== undefined) return known
  const text = value.trim()
  const imf = IMF_FIXDATE.exec(text)
  if (imf) {
    const [, day = '', month = '', year = '', hours = '', minutes = '', seconds = '', zone = ''] = imf
    const localMs = toEpochMs(partsOf(year, month, day, [hours, minutes, seconds]))
    const offsetMs = zoneOffsetMs(zone)
    if (localMs === undefined || offsetMs === undefined || localMs - offsetMs >= YEAR_10000_MS)
      return undefined
    return recentFixdates.set(value, localMs - offsetMs)
  }
  const rfc850 = RFC850_DATE.exec(text)
  if (rfc850) {
    const [, day = '', month = '', year = '', ...time] = rfc850
    return resolveTwoDigitYear(partsOf(year, month, day, time), referenceMs ?? Date.now())
  }
  const asctime = ASCTIME_DATE.exec(text)
  if (asctime) {
    const [, month = '', day = '', hours = '', minutes = '', seconds = '', year = ''] = asctime
    return toEpochMs(partsOf(year, month, day.trim(), [hours, minutes, seconds]))
  }
  return undefined
}

/**
 * An HTTP-date in one of RFC 9110's three forms only, the fixdate's zone `GMT`: RFC 9111 §5.3 has a
 * cache read an Expires in any other form as already expired, which restricts the robust reading.
 */
export function parseStrictHttpDate(value: string | undefined, referenceMs?: number): number | undefined {
  if (value === undefined || ZONE_NOT_GMT.test(value.trim())) return undefined
  return parseHttpDate(value, referenceMs)
}

/** Formats epoch ms as an IMF-fixdate (RFC 9110 §5.6.7), dropping milliseconds. Throws on an invalid time. */
export function formatHttpDate(ms: number): string {
  const date = new Date(ms)
  if (Number.isNaN(date.getTime())) throw new RangeError(`formatHttpDate: invalid time ${ms}`)
  return date.toUTCString()
}
