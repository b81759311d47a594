import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { linesOf, namesWith } from '../../lib/policy/fields.js'
import {
  contentLengthBytes,
  fieldLines,
  listMembers,
  singletonValue,
  splitListMembers,
  valueLines,
} from '../../lib/policy/headers.js'
import type { Headers } from '../../lib/policy/types.js'

describe('valueLines', () => {
  it('maps strings, arrays and anything else', () => {
    assert.deepEqual(valueLines('a'), ['a'])
    assert.deepEqual(valueLines(['a', 'b']), ['a', 'b'])
    assert.deepEqual(valueLines(undefined), [])
    assert.deepEqual(valueLines(42 as unknown as string), [])
    assert.deepEqual(valueLines(['a', 7, 'b'] as unknown as string[]), ['a', 'b'])
  })
})

describe('fieldLines', () => {
  it('returns all lines of a field', () => {
    assert.deepEqual(fieldLines({ a: 'x' }, 'a'), ['x'])
    assert.deepEqual(fieldLines({ a: ['x', 'y'] }, 'a'), ['x', 'y'])
    assert.deepEqual(fieldLines({}, 'a'), [])
    assert.deepEqual(fieldLines({ a: undefined }, 'a'), [])
  })

  it('returns a new array the caller may change, also for an absent field', () => {
    const lines = ['x']
    const result = fieldLines({ a: lines }, 'a')
    result.push('y')
    assert.deepEqual(lines, ['x'])
    const absent = fieldLines({}, 'a')
    absent.push('z')
    assert.deepEqual(fieldLines({}, 'a'), [])
  })

  it('linesOf (internal, read-only) shares one frozen empty list for absent fields', () => {
    assert.equal(linesOf({}, 'a'), linesOf({ b: 'x' }, 'a'))
    assert.ok(Object.isFrozen(linesOf({}, 'a')))
    assert.deepEqual(linesOf({ a: ['x', 'y'] }, 'a'), ['x', 'y'])
    assert.deepEqual(linesOf(Object.create({ a: 'inherited' }), 'a'), [])
  })

  it('ignores inherited properties', () => {
    assert.deepEqual(fieldLines({}, 'constructor'), [])
    assert.deepEqual(fieldLines({}, '__proto__'), [])
  })
})

describe('listMembers (RFC 9110 §5.6.1)', () => {
  it('combines lines, trims and drops empty members', () => {
    const headers: Headers = { vary: [' accept ,, accept-encoding', '', 'origin,'] }
    assert.deepEqual(listMembers(headers, 'vary'), ['accept', 'accept-encoding', 'origin'])
  })

  it('does not split inside quoted strings', () => {
    assert.deepEqual(listMembers({ 'cache-control': 'no-cache="a, b", max-age=5' }, 'cache-control'), [
      'no-cache="a, b"',
      'max-age=5',
    ])
  })

  it('returns [] for an absent field', () => {
    assert.deepEqual(listMembers({}, 'vary'), [])
    assert.deepEqual(splitListMembers([' , ']), [])
  })
})

describe('singletonValue', () => {
  it('returns the first line trimmed', () => {
    assert.equal(singletonValue({ etag: ' "a" ' }, 'etag'), '"a"')
    assert.equal(singletonValue({ etag: ['"a"', '"b"'] }, 'etag'), '"a"')
    assert.equal(singletonValue({ etag: '' }, 'etag'), '')
    assert.equal(singletonValue({}, 'etag'), undefined)
    assert.equal(singletonValue({ etag: [] }, 'etag'), undefined)
  })

  it('never throws on arbitrary values', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.array(fc.string())), (value) => {
        const headers: Headers = { x: value }
        listMembers(headers, 'x')
        singletonValue(headers, 'x')
      }),
    )
  })
})

describe('contentLengthBytes (RFC 9110 §8.6)', () => {
  it('reads a non-negative length; absent, empty, negative or non-numeric is undefined', () => {
    assert.equal(contentLengthBytes({ 'content-length': ' 1024 ' }), 1024)
    assert.equal(contentLengthBytes({ 'content-length': '0' }), 0)
    assert.equal(contentLengthBytes({ 'content-length': ['5', '5'] }), 5)
    assert.equal(contentLengthBytes({}), undefined)
    assert.equal(contentLengthBytes({ 'content-length': '' }), undefined)
    assert.equal(contentLengthBytes({ 'content-length': '-1' }), undefined)
    assert.equal(contentLengthBytes({ 'content-length': 'abc' }), undefined)
    assert.equal(contentLengthBytes({ 'content-length': '1.5' }), undefined)
    assert.equal(contentLengthBytes({ 'content-length': '9007199254740993' }), undefined)
  })
})

describe('namesWith', () => {
  const base: ReadonlySet<string> = new Set(['connection', 'keep-alive'])

  it('is the base set itself when every name is in it already (nothing copied)', () => {
    assert.equal(namesWith(base, ['keep-alive', 'connection']), base)
    assert.equal(namesWith(base, []), base)
  })

  it('adds the other names to a copy, leaving the base set as it was', () => {
    const names = namesWith(base, ['x-token', 'keep-alive', 'x-token'])
    assert.notEqual(names, base)
    assert.deepEqual([...names], ['connection', 'keep-alive', 'x-token'])
    assert.deepEqual([...base], ['connection', 'keep-alive'])
  })
})
