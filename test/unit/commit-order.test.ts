import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CommitOrder, commitOrderOf, nextSendOrder } from '../../lib/commit-order.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'

test('a response to a request made before the variant last committed is outdated; the same or a later one is not', () => {
  const order = new CommitOrder()
  assert.equal(order.outdated('k', '', 5), false)
  order.committing('k', '', 7)
  assert.equal(order.outdated('k', '', 6), true)
  assert.equal(order.outdated('k', '', 7), false)
  assert.equal(order.outdated('k', '', 8), false)
  // an older commit does not move it back
  order.committing('k', '', 3)
  assert.equal(order.outdated('k', '', 6), true)
  // other variants and keys are their own
  assert.equal(order.outdated('k', 'accept-language=fr', 1), false)
  assert.equal(order.outdated('other', '', 1), false)
})

test('the send order grows, and every interceptor on one store shares one CommitOrder', () => {
  const first = nextSendOrder()
  assert.ok(nextSendOrder() > first)
  const store = new MemoryStore()
  assert.equal(commitOrderOf(store), commitOrderOf(store))
  assert.notEqual(commitOrderOf(store), commitOrderOf(new MemoryStore()))
})
