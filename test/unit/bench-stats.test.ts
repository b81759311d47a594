import assert from 'node:assert/strict'
import { test } from 'node:test'
import { median, percentile } from '../../bench/stats.js'

test('bench median: the middle value, the mean of the two middle ones for an even count', () => {
  assert.equal(median([3, 1, 2]), 2)
  assert.equal(median([4, 1, 3, 2]), 2.5)
  assert.equal(median([78, 3840, 146, 3422]), 1784)
  assert.equal(median([5]), 5)
  assert.ok(Number.isNaN(median([])))
})

test('bench percentile: nearest rank', () => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i)
  assert.equal(percentile(values, 0.5), 50)
  assert.equal(percentile(values, 0.99), 99)
  assert.equal(percentile(values, 1), 100)
  assert.ok(Number.isNaN(percentile([], 0.5)))
})
