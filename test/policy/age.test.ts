import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { ageHeaderValue, ageValueSeconds, currentAgeSeconds, dateValueMs } from '../../lib/policy/age.js'
import { formatHttpDate } from '../../lib/policy/dates.js'

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0)

describe('ageValueSeconds (RFC 9111 §5.1)', () => {
  it('reads delta-seconds', () => {
    assert.equal(ageValueSeconds({ age: '60' }), 60)
    assert.equal(ageValueSeconds({ age: ' 7 ' }), 7)
  })

  it('uses the first member of repeated or listed values', () => {
    assert.equal(ageValueSeconds({ age: ['10', '20'] }), 10)
    assert.equal(ageValueSeconds({ age: '10, 20' }), 10)
  })

  it('ignores absent and invalid values', () => {
    for (const age of [undefined, '', '-1', '1.5', 'abc', '+5', '5 s']) {
      assert.equal(ageValueSeconds({ age }), 0, String(age))
    }
  })

  it('caps overflow at 2^31', () => {
    assert.equal(ageValueSeconds({ age: '99999999999999' }), 2147483648)
  })
})

describe('dateValueMs', () => {
  it('uses Date, else the response time', () => {
    assert.equal(dateValueMs({ date: formatHttpDate(T0) }, T0 + 5000), T0)
    assert.equal(dateValueMs({ date: 'garbage' }, T0), T0)
    assert.equal(dateValueMs({}, T0), T0)
  })
})

describe('currentAgeSeconds (RFC 9111 §4.2.3)', () => {
  it('is resident time for a response without Date or Age', () => {
    const stored = { headers: {}, requestTimeMs: T0, responseTimeMs: T0 }
    assert.equal(currentAgeSeconds(stored, T0), 0)
    assert.equal(currentAgeSeconds(stored, T0 + 2500), 2.5)
  })

  it('adds the response delay to the Age value', () => {
    const stored = { headers: { age: '10' }, requestTimeMs: T0 - 2000, responseTimeMs: T0 }
    assert.equal(currentAgeSeconds(stored, T0 + 3000), 15)
  })

  it('uses the apparent age when it is larger', () => {
    const stored = {
      headers: { date: formatHttpDate(T0 - 100_000), age: '5' },
      requestTimeMs: T0,
      responseTimeMs: T0,
    }
    assert.equal(currentAgeSeconds(stored, T0 + 1000), 101)
  })

  it('uses the corrected Age when it is larger', () => {
    const stored = {
      headers: { date: formatHttpDate(T0 - 10_000), age: '50' },
      requestTimeMs: T0 - 1000,
      responseTimeMs: T0,
    }
    assert.equal(currentAgeSeconds(stored, T0), 51)
  })

  it('ignores a Date in the future (apparent age floored at 0)', () => {
    const stored = { headers: { date: formatHttpDate(T0 + 60_000) }, requestTimeMs: T0, responseTimeMs: T0 }
    assert.equal(currentAgeSeconds(stored, T0 + 1000), 1)
  })

  it('uses the response time for an invalid Date', () => {
    const stored = { headers: { date: '1' }, requestTimeMs: T0, responseTimeMs: T0 }
    assert.equal(currentAgeSeconds(stored, T0 + 4000), 4)
  })

  it('is never negative, even when the clock went back', () => {
    const stored = { headers: {}, requestTimeMs: T0, responseTimeMs: T0 }
    assert.equal(currentAgeSeconds(stored, T0 - 10_000), 0)
  })

  it('never decreases as time passes', () => {
    fc.assert(
      fc.property(fc.nat(1e9), fc.nat(1e9), fc.string(), (a, b, age) => {
        const stored = { headers: { age }, requestTimeMs: T0, responseTimeMs: T0 }
        const [early, late] = a < b ? [a, b] : [b, a]
        assert.ok(currentAgeSeconds(stored, T0 + early) <= currentAgeSeconds(stored, T0 + late))
      }),
    )
  })
})

describe('ageHeaderValue', () => {
  it('floors to whole seconds', () => {
    assert.equal(ageHeaderValue(0), '0')
    assert.equal(ageHeaderValue(59.999), '59')
    assert.equal(ageHeaderValue(60), '60')
  })

  it('clamps negative, NaN and huge values', () => {
    assert.equal(ageHeaderValue(-3), '0')
    assert.equal(ageHeaderValue(Number.NaN), '0')
    assert.equal(ageHeaderValue(Number.POSITIVE_INFINITY), '2147483648')
  })
})
