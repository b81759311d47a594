import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BoundedMemo } from '../../lib/policy/bounded-memo.js'

test('BoundedMemo returns what it was given and never holds more than maxEntries', () => {
  const memo = new BoundedMemo<string, number>(3)
  assert.equal(memo.set('a', 1), 1)
  memo.set('b', 2)
  memo.set('c', 3)
  assert.deepEqual(
    ['a', 'b', 'c'].map((key) => memo.get(key)),
    [1, 2, 3],
  )
  assert.equal(memo.set('d', 4), 4, 'a fourth key empties it first')
  assert.deepEqual(
    ['a', 'b', 'c', 'd'].map((key) => memo.get(key)),
    [undefined, undefined, undefined, 4],
  )
})
