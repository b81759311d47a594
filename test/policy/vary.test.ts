import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { formatHttpDate } from '../../lib/policy/dates.js'
import type { Headers } from '../../lib/policy/types.js'
import { selectVariant, variantMatches, varyFieldNames, varyKey, varyValues } from '../../lib/policy/vary.js'

const T0 = Date.UTC(2024, 0, 1)

describe('varyFieldNames', () => {
  it('lower-cases, dedupes and sorts across lines', () => {
    assert.deepEqual(varyFieldNames({ vary: ['Accept-Encoding, Accept', 'accept, Origin'] }), [
      'accept',
      'accept-encoding',
      'origin',
    ])
  })

  it("returns '*' when any member is *", () => {
    assert.equal(varyFieldNames({ vary: ['accept', ' * '] }), '*')
  })

  it('returns [] without Vary', () => {
    assert.deepEqual(varyFieldNames({}), [])
    assert.deepEqual(varyFieldNames({ vary: ' , ' }), [])
  })
})

describe('varyValues', () => {
  it('joins lines, collapses whitespace and marks absent fields null', () => {
    const request: Headers = { accept: ['text/html,  application/json', ' */*'], 'accept-language': '\ten\t' }
    assert.deepEqual(varyValues(['accept', 'Accept-Language', 'origin'], request), {
      accept: 'text/html, application/json, */*',
      'accept-language': 'en',
      origin: null,
    })
  })

  it('returns {} for no names', () => {
    assert.deepEqual(varyValues([], { accept: 'x' }), {})
  })
})

describe('varyKey', () => {
  it("is '' without selecting fields", () => {
    assert.equal(varyKey({}), '')
  })

  it('is canonical: sorted, unambiguous, null distinct from "null"', () => {
    assert.equal(varyKey({ b: '2', a: null }), '[["a",null],["b","2"]]')
    assert.equal(varyKey({ a: null, b: '2' }), varyKey({ b: '2', a: null }))
    assert.notEqual(varyKey({ a: null }), varyKey({ a: 'null' }))
    assert.notEqual(varyKey({ a: 'x","b' }), varyKey({ a: 'x', b: '' }))
  })

  it('distinguishes distinct value sets', () => {
    const values = fc.dictionary(fc.string(), fc.option(fc.string(), { nil: null }))
    fc.assert(
      fc.property(values, values, (a, b) => {
        const same = JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort())
        assert.equal(varyKey(a) === varyKey(b), same)
      }),
    )
  })
})

describe('variantMatches (RFC 9111 §4.1)', () => {
  const stored = { varyValues: { accept: 'text/html', origin: null } }

  it('matches equal normalised values and absent-in-both', () => {
    assert.equal(variantMatches(stored, { accept: '  text/html ' }), true)
    assert.equal(variantMatches({ varyValues: {} }, { anything: 'x' }), true)
  })

  it('does not match a different, missing or newly present value', () => {
    assert.equal(variantMatches(stored, { accept: 'text/plain' }), false)
    assert.equal(variantMatches(stored, {}), false)
    assert.equal(variantMatches(stored, { accept: 'text/html', origin: 'https://a' }), false)
  })
})

describe('selectVariant (RFC 9111 §4.1)', () => {
  const entry = (name: string, accept: string | null, headers: Headers, responseTimeMs: number) => ({
    name,
    varyValues: { accept },
    headers,
    responseTimeMs,
  })

  it('picks the most recent matching entry by Date', () => {
    const entries = [
      entry('old', 'a', { date: formatHttpDate(T0) }, T0 + 50_000),
      entry('new', 'a', { date: formatHttpDate(T0 + 10_000) }, T0 + 10_000),
      entry('other', 'b', { date: formatHttpDate(T0 + 99_000) }, T0 + 99_000),
    ]
    assert.equal(selectVariant(entries, { accept: 'a' })?.name, 'new')
  })

  it('falls back to the response time without Date and breaks ties by it', () => {
    const entries = [
      entry('first', 'a', { date: formatHttpDate(T0) }, T0 + 100),
      entry('later', 'a', { date: formatHttpDate(T0) }, T0 + 900),
      entry('no-date', 'a', {}, T0 - 1000),
    ]
    assert.equal(selectVariant(entries, { accept: 'a' })?.name, 'later')
    assert.equal(selectVariant(entries.slice(0, 2).reverse(), { accept: 'a' })?.name, 'later')
  })

  it('returns undefined when nothing matches', () => {
    assert.equal(selectVariant([entry('x', 'a', {}, T0)], { accept: 'b' }), undefined)
    assert.equal(selectVariant([], {}), undefined)
  })
})
