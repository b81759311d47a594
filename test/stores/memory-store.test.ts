import assert from 'node:assert/strict'
import { test } from 'node:test'
import { inspect } from 'node:util'
import {
  MEMORY_STORE_DEFAULTS,
  MemoryStore,
  ONE_BUFFER_MAX_BYTES,
  PIECE_BYTES,
} from '../../lib/stores/memory-store.js'
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

test('MemoryStore keeps a one-buffer body as written and joins smaller chunks into one piece', async () => {
  const store = new MemoryStore()
  const pieces = [patternBody(10, 1), patternBody(20, 2), Buffer.alloc(0), patternBody(30, 3)]
  const writer = store.put('k', sampleMeta())
  assert.ok(writer)
  for (const piece of pieces) writer.write(piece)
  writer.commit()
  const entry = entryAt(store.get('k'))
  assert.equal(entry.sizeBytes, 60)
  assert.deepEqual(entry.body, Buffer.concat(pieces))
  const [joined, ...rest] = await readChunks(entry)
  assert.equal(rest.length, 0)
  assert.equal(joined, entry.body)
  // A buffer of its own, not a slice of Node's shared pool that it would keep alive.
  assert.equal(joined?.buffer.byteLength, 60)
  const single = patternBody(5, 4)
  await storeBody(store, 'one', sampleMeta(), single, 100)
  assert.deepEqual(entryAt(store.get('one')).body, single)
  await storeBody(store, 'empty', sampleMeta(), Buffer.alloc(0))
  assert.deepEqual(entryAt(store.get('empty')).body, Buffer.alloc(0))
})

test('MemoryStore joins a large body written in chunks into one buffer at commit', async () => {
  const store = new MemoryStore()
  const chunkBytes = 64 * 1024
  const chunks = Array.from({ length: 40 }, (_, index) => patternBody(chunkBytes, index))
  const writer = store.put('big', sampleMeta())
  assert.ok(writer)
  for (const chunk of chunks) writer.write(chunk)
  writer.commit()
  const entry = entryAt(store.get('big'))
  const pieces = await readChunks(entry)
  assert.deepEqual(
    pieces.map((piece) => piece.length),
    [40 * chunkBytes],
  )
  assert.ok(40 * chunkBytes > 2 * PIECE_BYTES, 'more than the pieces joined while it was written')
  assert.deepEqual(pieces[0], Buffer.concat(chunks))
  assert.equal(entry.body, pieces[0], 'handed out as the one-piece body')
})

test('MemoryStore keeps a body over ONE_BUFFER_MAX_BYTES in PIECE_BYTES pieces', async () => {
  const store = new MemoryStore({ maxEntryBytes: 16 * 1024 * 1024 })
  const chunks = Array.from({ length: 9 }, (_, index) => patternBody(PIECE_BYTES + 1, index))
  const writer = store.put('huge', sampleMeta())
  assert.ok(writer)
  for (const chunk of chunks) writer.write(chunk)
  writer.commit()
  const pieces = await readChunks(entryAt(store.get('huge')))
  assert.ok(9 * (PIECE_BYTES + 1) > ONE_BUFFER_MAX_BYTES)
  assert.deepEqual(
    pieces.map((piece) => piece.length),
    Array(9).fill(PIECE_BYTES + 1),
    'each written chunk already a piece',
  )
  assert.deepEqual(Buffer.concat(pieces), Buffer.concat(chunks))
})

test('MemoryStore hits hand out the stored buffers themselves: no copy per hit', async () => {
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
  const multi = store.put('many', sampleMeta())
  assert.ok(multi)
  for (const size of [1000, 2000, 3000]) multi.write(patternBody(size, size))
  multi.commit()
  const [first, second] = [
    await readChunks(entryAt(store.get('many'))),
    await readChunks(entryAt(store.get('many'))),
  ]
  assert.equal(first.length, 1)
  assert.equal(first[0], second[0])
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
  // a body of maxBytes leaves no room for its metadata: refused too
  assert.equal(store.put('k', sampleMeta(), 1000), undefined)
  assert.ok(store.put('k', sampleMeta(), 500))
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
