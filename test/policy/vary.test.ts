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

  it('combines Cookie lines with "; " (RFC 9113 §8.2.3), so `a=1, b=2` in one line is another value', () => {
    const twoLines = varyValues(['cookie'], { cookie: ['sid=1', 'theme=2'] })
    assert.deepEqual(twoLines, { cookie: 'sid=1; theme=2' })
    assert.equal(variantMatches({ varyValues: twoLines }, { cookie: 'sid=1; theme=2' }), true)
    assert.equal(variantMatches({ varyValues: twoLines }, { cookie: 'sid=1, theme=2' }), false)
  })

  it('returns {} for no names', () => {
    assert.deepEqual(varyValues([], { accept: 'x' }), {})
  })

  it('compares Accept-Encoding, Accept-Language and Accept-Charset by their members', () => {
    const request: Headers = {
      'accept-encoding': ['gzip, BR', ' deflate ;  q = 0.5 ,, '],
      'accept-language': 'fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5',
      'accept-charset': 'UTF-8, iso-8859-1;q=0.5',
    }
    assert.deepEqual(varyValues(['accept-encoding', 'accept-language', 'accept-charset'], request), {
      'accept-encoding': 'br,deflate;q=0.5,gzip',
      'accept-language': 'fr-ch,fr;q=0.9,en;q=0.8,de;q=0.7,*;q=0.5',
      'accept-charset': 'utf-8,iso-8859-1;q=0.5',
    })
    assert.deepEqual(varyValues(['Accept-Encoding'], { 'accept-encoding': 'BR,gzip' }), {
      'accept-encoding': 'br,gzip',
    })
  })

  it('keeps an empty member list distinct from an absent field', () => {
    assert.deepEqual(varyValues(['accept-encoding'], { 'accept-encoding': '' }), { 'accept-encoding': '' })
    assert.deepEqual(varyValues(['accept-encoding'], { 'accept-encoding': ' , ' }), { 'accept-encoding': '' })
    assert.deepEqual(varyValues(['accept-encoding'], {}), { 'accept-encoding': null })
  })

  it('keeps the case and order of other fields', () => {
    assert.deepEqual(varyValues(['accept', 'x-token'], { accept: 'text/HTML, */*', 'x-token': 'B, a' }), {
      accept: 'text/HTML, */*',
      'x-token': 'B, a',
    })
  })

  it('keeps the member order of Accept-Language and Accept-Charset (RFC 9110 §12.5.4 ties)', () => {
    assert.notEqual(
      varyKey(varyValues(['accept-language'], { 'accept-language': 'de, fr' })),
      varyKey(varyValues(['accept-language'], { 'accept-language': 'fr, de' })),
    )
  })

  it('gives one varyKey to permuted, recased and respaced Accept-Encoding members', () => {
    const member = fc.tuple(
      fc.stringMatching(/^[a-z][a-z0-9-]{0,7}$|^\*$/),
      fc.option(fc.stringMatching(/^(0(\.[0-9]{1,3})?|1(\.0{1,3})?)$/), { nil: undefined }),
    )
    const spaces = fc.constantFrom('', ' ', '  ', '\t')
    const written = (name: string, q: string | undefined, upper: boolean, pad: string) => {
      const text = q === undefined ? name : `${name}${pad};${pad}q${pad}=${pad}${q}`
      return upper ? text.toUpperCase() : text
    }
    const variant = (members: [string, string | undefined][]) =>
      fc
        .tuple(
          fc.shuffledSubarray(members, { minLength: members.length, maxLength: members.length }),
          fc.array(fc.boolean(), { minLength: members.length, maxLength: members.length }),
          fc.array(spaces, { minLength: members.length, maxLength: members.length }),
          fc.nat(),
        )
        .map(([shuffled, upper, pads, cut]) => {
          const texts = shuffled.map(([name, q], index) =>
            written(name, q, upper[index] ?? false, pads[index] ?? ''),
          )
          const at = texts.length === 0 ? 0 : cut % texts.length
          const lines = [texts.slice(0, at).join(', '), texts.slice(at).join(` ,${pads[0] ?? ''}`)]
          return lines.filter((line) => line !== '')
        })
    const field = fc.constant('accept-encoding')
    const pair = fc
      .array(member, { minLength: 1, maxLength: 6 })
      .chain((members) => fc.tuple(variant(members), variant(members)))
    fc.assert(
      fc.property(field, pair, (name, [a, b]) => {
        assert.equal(varyKey(varyValues([name], { [name]: a })), varyKey(varyValues([name], { [name]: b })))
      }),
    )
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

  it('collapses only SP and HTAB, and never inside a quoted-string (RFC 9110 §5.6.3, §5.6.4)', () => {
    const storedWith = (value: string) => ({ varyValues: varyValues(['x-q'], { 'x-q': value }) })
    assert.equal(variantMatches(storedWith('a \t b'), { 'x-q': ' a b\t' }), true)
    assert.equal(variantMatches(storedWith('a\u00a0b'), { 'x-q': 'a b' }), false)
    assert.equal(variantMatches(storedWith('\u00a0a'), { 'x-q': 'a' }), false)
    assert.equal(variantMatches(storedWith('"a  b"'), { 'x-q': '"a b"' }), false)
    assert.equal(variantMatches(storedWith('"a \\" b"  c'), { 'x-q': '"a \\" b" c' }), true)
  })

  it('matches Accept-Encoding by its members', () => {
    const encodings = { varyValues: varyValues(['accept-encoding'], { 'accept-encoding': 'gzip, br' }) }
    assert.equal(variantMatches(encodings, { 'accept-encoding': 'BR,gzip' }), true)
    assert.equal(variantMatches(encodings, { 'accept-encoding': ['br', 'GZIP'] }), true)
    assert.equal(variantMatches(encodings, { 'accept-encoding': 'br' }), false)
    assert.equal(variantMatches(encodings, { 'accept-encoding': 'gzip;q=0, br' }), false)
  })

  it('compares the quoted parameter values of Accept-* members as they are (RFC 9110 §5.6.4)', () => {
    const quoted = { varyValues: varyValues(['accept-language'], { 'accept-language': 'en;x="A b"' }) }
    assert.equal(variantMatches(quoted, { 'accept-language': 'EN ; x="A b"' }), true)
    assert.equal(variantMatches(quoted, { 'accept-language': 'en;x="a b"' }), false)
    assert.equal(variantMatches(quoted, { 'accept-language': 'en;x="A ; b"' }), false)
    const semicolon = { varyValues: varyValues(['accept-language'], { 'accept-language': 'en;x="a ; b"' }) }
    assert.equal(variantMatches(semicolon, { 'accept-language': 'en;x="a;b"' }), false)
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

describe('a malformed Vary', () => {
  it("selects as '*' does: never a stored variant for another request", () => {
    assert.equal(varyFieldNames({ vary: 'Cookie Accept-Language' }), '*')
    assert.equal(varyFieldNames({ vary: ['accept', '"cookie"'] }), '*')
    assert.deepEqual(varyFieldNames({ vary: 'Cookie,  accept' }), ['accept', 'cookie'])
  })
})
