import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  entityTagOf,
  isWeakTag,
  strongEntityTagOf,
  strongMatch,
  weakMatch,
} from '../../lib/policy/entity-tag.js'

describe('entity-tag comparison (RFC 9110 §8.8.3.2)', () => {
  it('answers the RFC table', () => {
    const table: [string, string, boolean, boolean][] = [
      ['W/"1"', 'W/"1"', false, true],
      ['W/"1"', 'W/"2"', false, false],
      ['W/"1"', '"1"', false, true],
      ['"1"', '"1"', true, true],
    ]
    for (const [a, b, strong, weak] of table) {
      assert.equal(strongMatch(a, b), strong, `${a} ${b} strong`)
      assert.equal(weakMatch(a, b), weak, `${a} ${b} weak`)
      assert.equal(strongMatch(b, a), strong)
      assert.equal(weakMatch(b, a), weak)
    }
  })

  it('treats only an upper-case W/ as weak', () => {
    assert.equal(isWeakTag('W/"1"'), true)
    assert.equal(isWeakTag('w/"1"'), false)
    assert.equal(weakMatch('w/"1"', '"1"'), false)
  })
})

describe('entityTagOf', () => {
  it('returns the trimmed first ETag line, or undefined when empty or absent', () => {
    assert.equal(entityTagOf({ etag: ' "a" ' }), '"a"')
    assert.equal(entityTagOf({ etag: ['"a"', '"b"'] }), '"a"')
    assert.equal(entityTagOf({ etag: '  ' }), undefined)
    assert.equal(entityTagOf({}), undefined)
  })
})

describe('strongEntityTagOf', () => {
  it('returns the ETag only when it is strong', () => {
    assert.equal(strongEntityTagOf({ etag: ' "a" ' }), '"a"')
    assert.equal(strongEntityTagOf({ etag: 'W/"a"' }), undefined)
    assert.equal(strongEntityTagOf({ etag: '' }), undefined)
    assert.equal(strongEntityTagOf({}), undefined)
  })
})
