import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { MAX_DELTA_SECONDS, parseDeltaSeconds, splitOutsideQuotes, unquote } from '../../lib/policy/syntax.js'

describe('parseDeltaSeconds (RFC 9111 §1.2.2)', () => {
  it('parses digits', () => {
    assert.equal(parseDeltaSeconds('0'), 0)
    assert.equal(parseDeltaSeconds('0042'), 42)
  })

  it('caps overflow at 2^31', () => {
    assert.equal(MAX_DELTA_SECONDS, 2 ** 31)
    assert.equal(parseDeltaSeconds('2147483648'), 2147483648)
    assert.equal(parseDeltaSeconds('2147483649'), 2147483648)
    assert.equal(parseDeltaSeconds('9'.repeat(400)), 2147483648)
  })

  it('rejects anything but digits', () => {
    for (const value of ['', ' 1', '1 ', '-1', '+1', '1.5', '1e3', 'abc', '0x10', '١']) {
      assert.equal(parseDeltaSeconds(value), undefined, value)
    }
  })
})

describe('splitOutsideQuotes', () => {
  it('splits at separators outside quoted strings', () => {
    assert.deepEqual(splitOutsideQuotes('a, "b, c", d', ','), ['a', ' "b, c"', ' d'])
    assert.deepEqual(splitOutsideQuotes('', ','), [''])
    assert.deepEqual(splitOutsideQuotes(',', ','), ['', ''])
  })

  it('honours quoted-pair escapes inside quotes only', () => {
    assert.deepEqual(splitOutsideQuotes('"a\\", b", c', ','), ['"a\\", b"', ' c'])
    assert.deepEqual(splitOutsideQuotes('a\\, b', ','), ['a\\', ' b'])
  })

  it('lets an unterminated quote run to the end', () => {
    assert.deepEqual(splitOutsideQuotes('a, "b, c', ','), ['a', ' "b, c'])
    assert.deepEqual(splitOutsideQuotes('"\\', ','), ['"\\'])
  })
})

describe('unquote (RFC 9110 §5.6.4)', () => {
  it('returns unquoted values as they are', () => {
    assert.equal(unquote('abc'), 'abc')
    assert.equal(unquote(''), '')
  })

  it('removes quotes and quoted-pair escapes', () => {
    assert.equal(unquote('"abc"'), 'abc')
    assert.equal(unquote('""'), '')
    assert.equal(unquote('"a\\"b\\\\c"'), 'a"b\\c')
  })

  it('tolerates unterminated strings and trailing text', () => {
    assert.equal(unquote('"abc'), 'abc')
    assert.equal(unquote('"abc\\'), 'abc')
    assert.equal(unquote('"a"junk'), 'a')
  })

  it('never throws', () => {
    fc.assert(
      fc.property(fc.string(), (value) => {
        unquote(value)
        splitOutsideQuotes(value, ',')
        parseDeltaSeconds(value)
      }),
    )
  })
})
