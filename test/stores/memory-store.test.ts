import assert from 'node:assert/strict'
import { test } from 'node:test'
import { inspect } from 'node:util'
import { MEMORY_STORE_DEFAULTS, MemoryStore } from '../../lib/stores/memory-store.js'
import { runStoreContract } from './contract.js'
import { entryAt, patternBody, readChunks, sampleMeta, storeBody } from './helpers.js'

runStoreContract('MemoryStore', (limits) => new MemoryStore(limits))

test('MemoryStore defaults', () => {
  const store = new MemoryStore()
  assert.deepEqual(store.limits, {
    maxBytes: 64 * 1024 * 1024,
    maxEntryBytes: 8 * 1024 * 1024,
    maxEntries: 10_000,
  })
  assert.deepEqual(MEMORY_STORE_DEFAULTS, store.limits)
  assert.deepEqual(new MemoryStore({}).limits, store.limits)
})

test('MemoryStore keeps the written buffers and sets body only for a one-chunk body', async () => {
  const store = new MemoryStore()
  const pieces = [patternBody(10, 1), patternBody(20, 2), Buffer.alloc(0), patternBody(30, 3)]
  const writer = store.put('k', sampleMeta())
  assert.ok(writer)
  for (const piece of pieces) writer.write(piece)
  writer.commit()
  const entry = entryAt(store.get('k'))
  assert.equal(entry.body, undefined)
  assert.equal(entry.sizeBytes, 60)
  const chunks = await readChunks(entry)
  assert.equal(chunks.length, 3)
  assert.equal(chunks[0], pieces[0])
  assert.equal(chunks[1], pieces[1])
  assert.equal(chunks[2], pieces[3])
  const single = patternBody(5, 4)
  await storeBody(store, 'one', sampleMeta(), single, 100)
  assert.deepEqual(entryAt(store.get('one')).body, single)
  await storeBody(store, 'empty', sampleMeta(), Buffer.alloc(0))
  assert.deepEqual(entryAt(store.get('empty')).body, Buffer.alloc(0))
})

test('MemoryStore hits hand out the written buffers themselves: no concatenation, no copy', async () => {
  const store = new MemoryStore()
  const single = patternBody(4096, 5)
  const writer = store.put('one', sampleMeta())
  assert.ok(writer)
  writer.write(single)
  writer.commit()
  for (let hit = 0; hit < 2; hit++) {
    const entry = entryAt(store.get('one'))
    assert.equal(entry.body, single)
    const [chunk, ...rest] = await readChunks(entry)
    assert.equal(chunk, single)
    assert.equal(rest.length, 0)
  }
  const pieces = [patternBody(1000, 6), patternBody(2000, 7), patternBody(3000, 8)]
  const multi = store.put('many', sampleMeta())
  assert.ok(multi)
  for (const piece of pieces) multi.write(piece)
  multi.commit()
  const [first, second] = [
    await readChunks(entryAt(store.get('many'))),
    await readChunks(entryAt(store.get('many'))),
  ]
  for (const chunks of [first, second]) {
    assert.equal(chunks.length, 3)
    for (const [index, piece] of pieces.entries()) assert.equal(chunks[index], piece)
  }
})

test('MemoryStore counts body bytes plus metadata JSON bytes, ids increase', async () => {
  const store = new MemoryStore()
  const meta = sampleMeta({ headers: { 'x-name': 'caf\u00e9' } })
  const metaBytes = Buffer.byteLength(JSON.stringify(meta))
  await storeBody(store, 'a', meta, patternBody(100, 1))
  await storeBody(store, 'b', meta, patternBody(50, 2))
  assert.deepEqual(store.stats(), { totalBytes: 150 + 2 * metaBytes, entryCount: 2 })
  assert.ok((entryAt(store.get('b')).id as number) > (entryAt(store.get('a')).id as number))
  const fresher = sampleMeta()
  store.update('a', entryAt(store.get('a')).id, fresher)
  const fresherBytes = Buffer.byteLength(JSON.stringify(fresher))
  assert.deepEqual(store.stats(), { totalBytes: 150 + metaBytes + fresherBytes, entryCount: 2 })
  store.delete('a')
  assert.deepEqual(store.stats(), { totalBytes: 50 + metaBytes, entryCount: 1 })
  store.close()
  assert.throws(() => store.stats(), /MemoryStore is closed/)
})

test('MemoryStore caps maxEntryBytes at maxBytes', async () => {
  const store = new MemoryStore({ maxBytes: 1000, maxEntryBytes: 5000 })
  assert.equal(store.put('k', sampleMeta(), 1001), undefined)
  assert.ok(store.put('k', sampleMeta(), 1000))
})

const invalidOptions: [unknown, ErrorConstructor, string][] = [
  [{ maxBytes: -1 }, RangeError, 'MemoryStore option maxBytes must be a positive integer (bytes), got -1'],
  [{ maxBytes: 0 }, RangeError, 'MemoryStore option maxBytes must be a positive integer (bytes), got 0'],
  [{ maxBytes: '1' }, TypeError, 'MemoryStore option maxBytes must be a positive integer (bytes), got "1"'],
  [
    { maxEntryBytes: 1.5 },
    RangeError,
    'MemoryStore option maxEntryBytes must be a positive integer (bytes), got 1.5',
  ],
  [
    { maxEntries: Number.NaN },
    RangeError,
    'MemoryStore option maxEntries must be a positive integer (entries), got NaN',
  ],
  [
    { maxEntries: null },
    TypeError,
    'MemoryStore option maxEntries must be a positive integer (entries), got null',
  ],
  [
    { maxSize: 10 },
    TypeError,
    'MemoryStore has no option maxSize (known: maxBytes, maxEntryBytes, maxEntries)',
  ],
  [
    { chunkBytes: 2048 },
    TypeError,
    'MemoryStore has no option chunkBytes (known: maxBytes, maxEntryBytes, maxEntries)',
  ],
  [null, TypeError, 'MemoryStore options must be an object, got null'],
  [64, TypeError, 'MemoryStore options must be an object, got 64'],
]

for (const [options, type, message] of invalidOptions) {
  test(`MemoryStore rejects ${inspect(options)}`, () => {
    assert.throws(
      () => new MemoryStore(options as never),
      (error: unknown) => {
        assert.ok(error instanceof type)
        assert.equal((error as Error).message, message)
        return true
      },
    )
  })
}
