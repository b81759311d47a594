import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Invalidations } from '../../lib/invalidations.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { StoredEntry } from '../../lib/stores/store.js'

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
  assert.equal(invalidations.usable(store, 'k', entries), entries)
  invalidations.retire('k', 1)
  assert.deepEqual(idsOf(invalidations.usable(store, 'k', entries)), [2])
  assert.equal(invalidations.usable(store, 'other', entries), entries)
  invalidations.retire('k', 2)
  assert.deepEqual(invalidations.usable(store, 'k', entries), [])
  invalidations.removed('k', 1)
  assert.deepEqual(idsOf(invalidations.usable(store, 'k', entries)), [1])
  invalidations.removed('k', 2)
  invalidations.removed('k', 2)
  assert.equal(invalidations.usable(store, 'k', entries), entries)
})

test('retired keys are bounded: past 10 000 the oldest is forgotten', () => {
  const invalidations = new Invalidations()
  const store = new MemoryStore()
  const entries = [entry(1)]
  for (let i = 0; i <= 10_000; i++) invalidations.retire(`k${i}`, 1)
  assert.equal(invalidations.usable(store, 'k0', entries), entries)
  assert.deepEqual(invalidations.usable(store, 'k1', entries), [])
  assert.deepEqual(invalidations.usable(store, 'k10000', entries), [])
  // retiring again makes a key the newest
  invalidations.retire('k1', 1)
  invalidations.retire('k10001', 1)
  assert.deepEqual(invalidations.usable(store, 'k1', entries), [])
  assert.equal(invalidations.usable(store, 'k2', entries), entries)
})

test('while the delete an invalidation asked for is under way, what was stored by then is not usable', () => {
  const invalidations = new Invalidations()
  const store = new MemoryStore()
  const storedAt = (id: number, responseTimeMs: number) => ({ ...entry(id), responseTimeMs })
  const entries = [storedAt(1, 1000), storedAt(2, 2000), storedAt(3, 2001)]
  invalidations.invalidated('k', 2000)
  assert.deepEqual(idsOf(invalidations.usable(store, 'k', entries)), [3])
  assert.equal(invalidations.usable(store, 'other', entries), entries)
  // a later invalidation of the key is not ended by the settling of the earlier one
  invalidations.invalidated('k', 2500)
  invalidations.deleted('k', 2000)
  assert.deepEqual(invalidations.usable(store, 'k', entries), [])
  invalidations.deleted('k', 2500)
  assert.equal(invalidations.usable(store, 'k', entries), entries)
})
