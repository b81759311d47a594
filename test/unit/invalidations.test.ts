import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Invalidations } from '../../lib/invalidations.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { CacheStore, StoredEntry } from '../../lib/stores/store.js'

const entry = (id: number): StoredEntry => ({
  id,
  statusCode: 200,
  statusMessage: 'OK',
  headers: {},
  requestTimeMs: 0,
  responseTimeMs: 0,
  sizeBytes: 0,
  varyKey: '',
  varyValues: {},
  deleteAtMs: Number.POSITIVE_INFINITY,
  readBody: () => [],
})

const idsOf = (entries: StoredEntry[]) => entries.map((kept) => kept.id)

test('a retired entry is not usable until it is removed; other entries of its key stay usable', () => {
  const invalidations = new Invalidations()
  const store = new MemoryStore()
  const entries = [entry(1), entry(2)]
  assert.equal(invalidations.usable(store, 'k', entries, 0), entries)
  invalidations.retire('k', 1)
  assert.deepEqual(idsOf(invalidations.usable(store, 'k', entries, 0)), [2])
  assert.equal(invalidations.usable(store, 'other', entries, 0), entries)
  invalidations.retire('k', 2)
  assert.deepEqual(invalidations.usable(store, 'k', entries, 0), [])
  invalidations.removed('k', 1)
  assert.deepEqual(idsOf(invalidations.usable(store, 'k', entries, 0)), [1])
  invalidations.removed('k', 2)
  invalidations.removed('k', 2)
  assert.equal(invalidations.usable(store, 'k', entries, 0), entries)
})

test('a retired entry a later lookup no longer finds is forgotten; one retired after the lookup was sent is kept', () => {
  const invalidations = new Invalidations()
  const store = new MemoryStore()
  // each revalidation's full answer is not stored; the next response stored replaces the entry
  for (let id = 1; id <= 1000; id++) {
    const lookedUp = invalidations.lookupStarted()
    assert.deepEqual(idsOf(invalidations.usable(store, 'k', [entry(id)], lookedUp)), [id])
    invalidations.retire('k', id)
  }
  const lookedUp = invalidations.lookupStarted()
  invalidations.retire('k', 1001) // an entry stored and retired while this lookup was under way
  assert.deepEqual(invalidations.usable(store, 'k', [entry(1000)], lookedUp), [])
  assert.equal(invalidations.isRetired('k', 999), false, 'replaced since: forgotten')
  assert.equal(invalidations.isRetired('k', 1000), true, 'still stored')
  assert.equal(invalidations.isRetired('k', 1001), true, 'retired after the lookup was sent: kept')
  assert.deepEqual(
    idsOf(invalidations.usable(store, 'k', [entry(1002)], invalidations.lookupStarted())),
    [1002],
  )
  assert.equal(invalidations.isRetired('k', 1000), false)
  assert.equal(invalidations.isRetired('k', 1001), false)
})

test('retired keys are bounded: past 10 000 the oldest is forgotten', () => {
  const invalidations = new Invalidations()
  const store = new MemoryStore()
  const entries = [entry(1)]
  for (let i = 0; i <= 10_000; i++) invalidations.retire(`k${i}`, 1)
  assert.equal(invalidations.usable(store, 'k0', entries, 0), entries)
  assert.deepEqual(invalidations.usable(store, 'k1', entries, 0), [])
  assert.deepEqual(invalidations.usable(store, 'k10000', entries, 0), [])
  // retiring again makes a key the newest
  invalidations.retire('k1', 1)
  invalidations.retire('k10001', 1)
  assert.deepEqual(invalidations.usable(store, 'k1', entries, 0), [])
  assert.equal(invalidations.usable(store, 'k2', entries, 0), entries)
})

test('a lookup sent before the delete an invalidation asked for settled does not use responses to requests sent by then', () => {
  const invalidations = new Invalidations()
  const store = new MemoryStore()
  const sentAt = (id: number, requestTimeMs: number) => ({
    ...entry(id),
    requestTimeMs,
    responseTimeMs: 2600,
  })
  // 1 and 2 were sent before the invalidation, and answered after it (stored by another process)
  const entries = [sentAt(1, 1000), sentAt(2, 2000), sentAt(3, 2001)]
  const first = invalidations.invalidated('k', 2000)
  const duringFirst = invalidations.lookupStarted()
  assert.deepEqual(idsOf(invalidations.usable(store, 'k', entries, duringFirst)), [3])
  assert.equal(invalidations.usable(store, 'other', entries, duringFirst), entries)
  // a later invalidation of the key is not ended by the settling of the earlier one
  const second = invalidations.invalidated('k', 2500)
  invalidations.deleted('k', first)
  assert.deepEqual(invalidations.usable(store, 'k', entries, invalidations.lookupStarted()), [])
  invalidations.deleted('k', second)
  // the store answered the lookups sent before the delete settled first, or settled the delete first
  assert.deepEqual(invalidations.usable(store, 'k', entries, duringFirst), [])
  assert.equal(invalidations.usable(store, 'k', entries, invalidations.lookupStarted()), entries)
})

test('two invalidations of a key in one millisecond: the settling of the first does not end the second', () => {
  const invalidations = new Invalidations()
  const store = new MemoryStore()
  const entries = [{ ...entry(1), requestTimeMs: 1000 }]
  const first = invalidations.invalidated('k', 2000)
  const second = invalidations.invalidated('k', 2000)
  invalidations.deleted('k', first)
  assert.deepEqual(invalidations.usable(store, 'k', entries, invalidations.lookupStarted()), [])
  invalidations.deleted('k', second)
  assert.equal(invalidations.usable(store, 'k', entries, invalidations.lookupStarted()), entries)
})

test('after a failed delete, a lookup finding what was stored before deletes again; lookups sent before that worked still hide it', async () => {
  const invalidations = new Invalidations()
  let deletes = 0
  let deleted = () => {}
  const store = {
    delete: () => {
      deletes++
      return new Promise<void>((resolve) => {
        deleted = resolve
      })
    },
  } as unknown as CacheStore
  const older = { ...entry(1), requestTimeMs: 1000 }
  const newer = { ...entry(2), requestTimeMs: 3000 }
  const count = invalidations.invalidated('k', 2000)
  invalidations.unwritten('k', count)
  invalidations.deleted('k', count)
  const sentBefore = invalidations.lookupStarted()
  assert.deepEqual(idsOf(invalidations.usable(store, 'k', [older, newer], sentBefore)), [2])
  assert.equal(deletes, 1)
  assert.deepEqual(idsOf(invalidations.usable(store, 'k', [newer], sentBefore)), [2])
  assert.equal(deletes, 1, 'nothing older found: nothing to delete')
  deleted()
  await Promise.resolve()
  assert.deepEqual(idsOf(invalidations.usable(store, 'k', [older, newer], sentBefore)), [2])
  assert.equal(deletes, 1, 'the delete worked: a lookup sent before it is not one to delete again')
  const sentAfter = invalidations.lookupStarted()
  assert.deepEqual(idsOf(invalidations.usable(store, 'k', [older, newer], sentAfter)), [1, 2])
})

test('after a failed delete, a synchronous store deletes again at once: the lookup finds nothing', () => {
  const invalidations = new Invalidations()
  const store = new MemoryStore()
  const entries = [{ ...entry(1), requestTimeMs: 1000 }]
  const count = invalidations.invalidated('k', 2000)
  invalidations.unwritten('k', count)
  invalidations.deleted('k', count)
  assert.deepEqual(invalidations.usable(store, 'k', entries, invalidations.lookupStarted()), [])
  assert.equal(invalidations.usable(store, 'k', entries, invalidations.lookupStarted()), entries)
})
