import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { contentRangeValue, evaluateRange, type RangeOutcome } from '../../lib/policy/range.js'
import type { Headers } from '../../lib/policy/types.js'

const SIZE = 10000
const LAST_MODIFIED = 'Sat, 29 Oct 1994 19:43:31 GMT'
const STORED: Headers = {
  etag: '"xyzzy"',
  'last-modified': LAST_MODIFIED,
  date: 'Sat, 29 Oct 1994 19:44:31 GMT',
}

const range = (value: string | string[], extra: Headers = {}, size = SIZE, headers = STORED) =>
  evaluateRange({ range: value, ...extra }, size, headers)
const partial = (start: number, end: number): RangeOutcome => ({ kind: 'partial', start, end })
const FULL: RangeOutcome = { kind: 'full' }
const UNSATISFIABLE: RangeOutcome = { kind: 'unsatisfiable' }

describe('evaluateRange (RFC 9110 §14)', () => {
  it("is 'none' without Range, even with If-Range (§13.1.5)", () => {
    assert.deepEqual(evaluateRange({}, SIZE, STORED), { kind: 'none' })
    assert.deepEqual(evaluateRange({ range: undefined, 'if-range': '"other"' }, SIZE, STORED), {
      kind: 'none',
    })
  })

  it('answers the RFC 9110 §14.1.2 examples for a 10000-byte representation', () => {
    assert.deepEqual(range('bytes=0-499'), partial(0, 499))
    assert.deepEqual(range('bytes=500-999'), partial(500, 999))
    assert.deepEqual(range('bytes=-500'), partial(9500, 9999))
    assert.deepEqual(range('bytes=9500-'), partial(9500, 9999))
    assert.deepEqual(range('bytes=0-0'), partial(0, 0))
    assert.deepEqual(range('bytes=-1'), partial(9999, 9999))
  })

  it('clamps last-pos and long suffixes to the body', () => {
    assert.deepEqual(range('bytes=0-999999'), partial(0, 9999))
    assert.deepEqual(range('bytes=9999-10000'), partial(9999, 9999))
    assert.deepEqual(range('bytes=-20000'), partial(0, 9999))
    assert.deepEqual(range(`bytes=1-${'9'.repeat(400)}`), partial(1, 9999))
  })

  it('accepts a case-insensitive unit, whitespace and empty list elements', () => {
    assert.deepEqual(range('Bytes=0-1'), partial(0, 1))
    assert.deepEqual(range(' bytes = 0-1 '), partial(0, 1))
    assert.deepEqual(range('bytes=, 0-1 ,'), partial(0, 1))
  })

  it("is 'unsatisfiable' past the end, for -0 and for an int-range of an empty body", () => {
    assert.deepEqual(range('bytes=10000-'), UNSATISFIABLE)
    assert.deepEqual(range('bytes=10000-20000'), UNSATISFIABLE)
    assert.deepEqual(range('bytes=99999999999999999999999-'), UNSATISFIABLE)
    assert.deepEqual(range('bytes=-0'), UNSATISFIABLE)
    for (const value of ['bytes=0-', 'bytes=0-0', 'bytes=-0']) {
      assert.deepEqual(range(value, {}, 0), UNSATISFIABLE, value)
    }
  })

  it("is 'full' for a non-zero suffix of an empty body: satisfiable (§14.1.1), but no 206 can say so", () => {
    assert.deepEqual(range('bytes=-5', {}, 0), FULL)
    assert.deepEqual(range('bytes=-1', {}, 0), FULL)
  })

  it("ignores other units, several ranges and malformed values: 'full' (§14.2)", () => {
    for (const value of [
      'items=0-1',
      'bytes=0-0,-1',
      'bytes=0-1, 5-6',
      'bytes=5-2',
      'bytes=abc',
      'bytes=1-2-3',
      'bytes=0 -1',
      'bytes=+1-2',
      'bytes=',
      'bytes',
      '',
      ['bytes=0-1', 'bytes=2-3'],
    ]) {
      assert.deepEqual(range(value), FULL, String(value))
    }
  })

  it("is 'full' for a size that is not a byte count", () => {
    for (const size of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.deepEqual(range('bytes=0-1', {}, size), FULL, String(size))
    }
  })
})

describe('evaluateRange: If-Range (RFC 9110 §13.1.5)', () => {
  it('serves the range when the entity-tag matches strongly', () => {
    assert.deepEqual(range('bytes=0-1', { 'if-range': '"xyzzy"' }), partial(0, 1))
    assert.deepEqual(range('bytes=0-1', { 'if-range': ' "xyzzy" ' }), partial(0, 1))
  })

  it("is 'full' for a weak, different or unmatched entity-tag", () => {
    assert.deepEqual(range('bytes=0-1', { 'if-range': 'W/"xyzzy"' }), FULL)
    assert.deepEqual(range('bytes=0-1', { 'if-range': '"other"' }), FULL)
    assert.deepEqual(range('bytes=0-1', { 'if-range': '"xyzzy"' }, SIZE, { etag: 'W/"xyzzy"' }), FULL)
    assert.deepEqual(range('bytes=0-1', { 'if-range': '"xyzzy"' }, SIZE, {}), FULL)
  })

  it('answers a date only when the stored Last-Modified is a strong validator, 60 s or more before Date (§8.8.2.2)', () => {
    const storedAt = (date: string | undefined) => ({
      'last-modified': LAST_MODIFIED,
      ...(date ? { date } : {}),
    })
    const ifRange = { 'if-range': LAST_MODIFIED }
    assert.deepEqual(
      range('bytes=0-1', ifRange, SIZE, storedAt('Sat, 29 Oct 1994 19:44:31 GMT')),
      partial(0, 1),
    )
    assert.deepEqual(range('bytes=0-1', ifRange, SIZE, storedAt('Sat, 29 Oct 1994 19:44:30 GMT')), FULL)
    assert.deepEqual(range('bytes=0-1', ifRange, SIZE, storedAt('Sat, 29 Oct 1994 19:43:31 GMT')), FULL)
    assert.deepEqual(range('bytes=0-1', ifRange, SIZE, storedAt(undefined)), FULL)
    assert.deepEqual(range('bytes=0-1', ifRange, SIZE, storedAt('not a date')), FULL)
  })

  it('serves the range when the date equals the stored Last-Modified', () => {
    assert.deepEqual(range('bytes=0-1', { 'if-range': LAST_MODIFIED }), partial(0, 1))
    const obsolete = { 'if-range': 'Saturday, 29-Oct-94 19:43:31 GMT' }
    assert.deepEqual(range('bytes=0-1', obsolete), partial(0, 1))
  })

  it("is 'full' for another date, an invalid one, or no stored Last-Modified", () => {
    assert.deepEqual(range('bytes=0-1', { 'if-range': 'Sat, 29 Oct 1994 19:43:32 GMT' }), FULL)
    assert.deepEqual(range('bytes=0-1', { 'if-range': 'yesterday' }), FULL)
    assert.deepEqual(range('bytes=0-1', { 'if-range': LAST_MODIFIED }, SIZE, { etag: '"xyzzy"' }), FULL)
    assert.deepEqual(range('bytes=0-1', { 'if-range': 'x' }, SIZE, { 'last-modified': 'x' }), FULL)
  })

  it("is 'full' for several If-Range lines, and before an unsatisfiable range", () => {
    assert.deepEqual(range('bytes=0-1', { 'if-range': ['"xyzzy"', '"xyzzy"'] }), FULL)
    assert.deepEqual(range('bytes=20000-', { 'if-range': '"other"' }), FULL)
    assert.deepEqual(range('bytes=20000-', { 'if-range': '"xyzzy"' }), UNSATISFIABLE)
  })
})

describe('evaluateRange properties', () => {
  it('never throws, and a partial outcome lies within the body', () => {
    const rangeValue = fc.oneof(
      fc.string(),
      fc.stringMatching(/^[bB]ytes=[-0-9, ]{0,12}$/),
      fc.tuple(fc.nat(), fc.option(fc.nat())).map(([a, b]) => `bytes=${a}-${b ?? ''}`),
    )
    const size = fc.oneof(fc.nat({ max: 100_000 }), fc.integer(), fc.double())
    fc.assert(
      fc.property(rangeValue, size, fc.option(fc.string()), (value, sizeBytes, ifRange) => {
        const request: Headers = ifRange === null ? { range: value } : { range: value, 'if-range': ifRange }
        const outcome = evaluateRange(request, sizeBytes, STORED)
        if (outcome.kind === 'partial') {
          assert.ok(0 <= outcome.start && outcome.start <= outcome.end && outcome.end < sizeBytes)
          assert.ok(Number.isSafeInteger(outcome.start) && Number.isSafeInteger(outcome.end))
        }
      }),
    )
  })
})

describe('contentRangeValue (RFC 9110 §14.4)', () => {
  it('formats 206 and 416 values', () => {
    assert.equal(contentRangeValue(partial(0, 99), 1000), 'bytes 0-99/1000')
    assert.equal(contentRangeValue(range('bytes=-500'), SIZE), 'bytes 9500-9999/10000')
    assert.equal(contentRangeValue(UNSATISFIABLE, 1000), 'bytes */1000')
  })

  it("is '' for outcomes without a Content-Range", () => {
    assert.equal(contentRangeValue({ kind: 'none' }, 1000), '')
    assert.equal(contentRangeValue(FULL, 1000), '')
  })
})
