import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { formatHttpDate, parseHttpDate } from '../../lib/policy/dates.js'

const EXAMPLE_MS = Date.UTC(1994, 10, 6, 8, 49, 37)
const NOW_2026 = Date.UTC(2026, 5, 1)

describe('parseHttpDate (RFC 9110 §5.6.7)', () => {
  it('parses the three RFC examples to the same instant', () => {
    assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT'), EXAMPLE_MS)
    assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', NOW_2026), EXAMPLE_MS)
    assert.equal(parseHttpDate('Sun Nov  6 08:49:37 1994'), EXAMPLE_MS)
  })

  it('accepts a two-digit asctime day, surrounding whitespace and any letter case', () => {
    assert.equal(parseHttpDate('Wed Nov 16 08:49:37 1994'), Date.UTC(1994, 10, 16, 8, 49, 37))
    assert.equal(parseHttpDate('  Sun, 06 Nov 1994 08:49:37 GMT '), EXAMPLE_MS)
    assert.equal(parseHttpDate('sun, 06 NOV 1994 08:49:37 gmt'), EXAMPLE_MS)
  })

  it("reads a fixdate's zone written as the Internet Message Format writes it (RFC 5322 §3.3), as PHP's date('r') does", () => {
    for (const zone of ['+0000', '-0000', 'UTC', 'UT', 'utc'])
      assert.equal(parseHttpDate(`Sun, 06 Nov 1994 08:49:37 ${zone}`), EXAMPLE_MS, zone)
    assert.equal(parseHttpDate('Sun, 06 Nov 1994 09:49:37 +0100'), EXAMPLE_MS)
    assert.equal(parseHttpDate('Sun, 06 Nov 1994 03:19:37 -0530'), EXAMPLE_MS)
    // no instant past what a four-digit year says (an If-Modified-Since could not be written)
    assert.equal(parseHttpDate('Fri, 31 Dec 9999 23:30:00 -0100'), undefined)
    assert.equal(parseHttpDate('Fri, 31 Dec 9999 23:30:00 +0100'), Date.UTC(9999, 11, 31, 22, 30))
  })

  it('does not check the day name against the date', () => {
    assert.equal(parseHttpDate('Mon, 06 Nov 1994 08:49:37 GMT'), EXAMPLE_MS)
  })

  it('accepts a leap second and leap days', () => {
    assert.equal(parseHttpDate('Sat, 31 Dec 2016 23:59:60 GMT'), Date.UTC(2017, 0, 1))
    assert.equal(parseHttpDate('Thu, 29 Feb 2024 00:00:00 GMT'), Date.UTC(2024, 1, 29))
    assert.equal(parseHttpDate('Tue, 29 Feb 2000 00:00:00 GMT'), Date.UTC(2000, 1, 29))
  })

  it('handles years before 100 without the Date.UTC 19xx mapping', () => {
    const expected = new Date(0)
    expected.setUTCFullYear(50, 0, 1)
    assert.equal(parseHttpDate('Sat, 01 Jan 0050 00:00:00 GMT'), expected.getTime())
  })

  it('rejects out-of-range fields', () => {
    for (const value of [
      'Thu, 29 Feb 2023 00:00:00 GMT',
      'Mon, 29 Feb 1900 00:00:00 GMT',
      'Mon, 31 Apr 2024 00:00:00 GMT',
      'Mon, 00 Jan 2024 00:00:00 GMT',
      'Mon, 01 Jan 2024 24:00:00 GMT',
      'Mon, 01 Jan 2024 00:60:00 GMT',
      'Mon, 01 Jan 2024 00:00:61 GMT',
      'Sun Nov 31 08:49:37 1994',
    ]) {
      assert.equal(parseHttpDate(value), undefined, value)
    }
  })

  it('rejects anything that is not one of the three formats', () => {
    for (const value of [
      undefined,
      '',
      '1',
      '0',
      '-1',
      'now',
      '2024-01-01T00:00:00Z',
      'Sun, 6 Nov 1994 08:49:37 GMT',
      'Sun, 06 Nov 94 08:49:37 GMT',
      'Sun, 06 Nov 1994 08:49:37 EST',
      'Sun, 06 Nov 1994 08:49:37 +00',
      'Sun, 06 Nov 1994 08:49:37 +0060',
      'Sun, 06 Nov 1994 08:49:37 +2400',
      'Sun, 06 Nov 1994 08:49:37 0000',
      'Sun, 06 Nov 1994 08:49:37 Z',
      'Sun, 06 Nov 1994 8:49:37 GMT',
      'Sun, 06 Foo 1994 08:49:37 GMT',
      'Funday, 06-Nov-94 08:49:37 GMT',
      'Sun, 06-Nov-94 08:49:37 GMT',
      'Sunday, 06-Nov-1994 08:49:37 GMT',
      'Sun Nov 6 08:49:37 1994',
      'Sun Nov  6 08:49:37 94',
      'Sun, 06 Nov 1994 08:49:37 GMT junk',
    ]) {
      assert.equal(parseHttpDate(value), undefined, String(value))
    }
  })

  it('places RFC 850 years more than 50 years ahead in the previous century', () => {
    assert.equal(parseHttpDate('Thursday, 01-Jan-76 00:00:00 GMT', NOW_2026), Date.UTC(2076, 0, 1))
    assert.equal(parseHttpDate('Thursday, 02-Jul-76 00:00:00 GMT', NOW_2026), Date.UTC(1976, 6, 2))
    assert.equal(parseHttpDate('Saturday, 01-Jan-00 00:00:00 GMT', NOW_2026), Date.UTC(2000, 0, 1))
    assert.equal(parseHttpDate('Friday, 01-Jan-99 00:00:00 GMT', NOW_2026), Date.UTC(1999, 0, 1))
  })

  it('places RFC 850 years 50 or more years back in the next century', () => {
    const reference = Date.UTC(2070, 0, 1)
    assert.equal(parseHttpDate('Friday, 01-Jan-10 00:00:00 GMT', reference), Date.UTC(2110, 0, 1))
    assert.equal(parseHttpDate('Friday, 01-Jan-30 00:00:00 GMT', reference), Date.UTC(2030, 0, 1))
  })

  it('uses the current time when no reference is given', () => {
    const expected = parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', Date.now())
    assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT'), expected)
  })

  it('rejects an impossible RFC 850 date and an unusable reference', () => {
    assert.equal(parseHttpDate('Monday, 30-Feb-24 00:00:00 GMT', NOW_2026), undefined)
    assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', Number.NaN), undefined)
  })

  it('round-trips toUTCString to the second', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 253402300799999 }), (ms) => {
        assert.equal(parseHttpDate(new Date(ms).toUTCString()), Math.floor(ms / 1000) * 1000)
      }),
    )
  })

  it('never throws on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.integer(), (value, referenceMs) => {
        const ms = parseHttpDate(value, referenceMs)
        assert.ok(ms === undefined || Number.isFinite(ms))
      }),
    )
  })
})

describe('formatHttpDate', () => {
  it('formats an IMF-fixdate without milliseconds', () => {
    assert.equal(formatHttpDate(EXAMPLE_MS + 999), 'Sun, 06 Nov 1994 08:49:37 GMT')
    assert.equal(formatHttpDate(0), 'Thu, 01 Jan 1970 00:00:00 GMT')
  })

  it('round-trips through parseHttpDate', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 253402300799 }), (seconds) => {
        assert.equal(parseHttpDate(formatHttpDate(seconds * 1000)), seconds * 1000)
      }),
    )
  })

  it('throws a RangeError on an invalid time', () => {
    assert.throws(() => formatHttpDate(Number.NaN), RangeError)
    assert.throws(() => formatHttpDate(Number.POSITIVE_INFINITY), RangeError)
  })
})
