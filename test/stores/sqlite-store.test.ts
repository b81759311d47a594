import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { inspect } from 'node:util'
import Database from 'better-sqlite3'
import { STALE_WRITE_MS } from '../../lib/stores/sqlite-liveness.js'
import { SCHEMA_VERSION } from '../../lib/stores/sqlite-schema.js'
import { defaultSqlitePath, SQLITE_STORE_DEFAULTS, SqliteStore } from '../../lib/stores/sqlite-store.js'
import { USE_WRITE_DELAY_MS } from '../../lib/stores/sqlite-uses.js'
import { CONTRACT_CHUNK_BYTES, runStoreContract } from './contract.js'
import {
  entryAt,
  patternBody,
  readBody,
  readChunks,
  sampleMeta,
  storeBody,
  usedBit,
  writeFromChild,
} from './helpers.js'

const contractDir = mkdtempSync(join(tmpdir(), 'undici-cache-contract-'))
let contractFiles = 0
runStoreContract(
  'SqliteStore (file)',
  (limits) =>
    new SqliteStore({
      path: join(contractDir, `contract-${contractFiles++}.db`),
      chunkBytes: CONTRACT_CHUNK_BYTES,
      ...limits,
    }),
  () => rmSync(contractDir, { recursive: true, force: true }),
  { readsRanges: true },
)
runStoreContract(
  'SqliteStore (:memory:)',
  (limits) => new SqliteStore({ path: ':memory:', chunkBytes: CONTRACT_CHUNK_BYTES, ...limits }),
)

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-sqlite-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const newPath = () => join(dir, `store-${files++}.db`)
const metaBytes = Buffer.byteLength(JSON.stringify(sampleMeta()))

/** A second, plain connection to look at (or tamper with) a store's file. */
function rawDb(path: string) {
  return new Database(path)
}

test('SqliteStore defaults and the file settings', () => {
  const path = newPath()
  const store = new SqliteStore({ path })
  assert.deepEqual(store.limits, {
    maxBytes: 1024 ** 3,
    maxEntryBytes: 256 * 1024 ** 2,
    maxEntries: 100_000,
    chunkBytes: 256 * 1024,
  })
  assert.equal(store.sweepIntervalMs, 60_000)
  assert.equal(store.onCorrupt, 'fail')
  assert.equal(store.failure, undefined)
  assert.equal(store.corruptCopyPath, undefined)
  assert.deepEqual(SQLITE_STORE_DEFAULTS, {
    ...store.limits,
    sweepIntervalMs: 60_000,
    onCorrupt: 'fail',
    hotBytes: 32 * 1024 * 1024,
    bodyFiles: true,
  })
  const raw = rawDb(path)
  assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal')
  assert.equal(raw.pragma('user_version', { simple: true }), SCHEMA_VERSION)
  assert.equal(SCHEMA_VERSION, 5)
  raw.close()
  store.close()
})

test('SqliteStore (bodyFiles: false) keeps small bodies inline and writes large ones as chunk rows of chunkBytes', async () => {
  const path = newPath()
  const store = new SqliteStore({ path, chunkBytes: 1024, bodyFiles: false })
  await storeBody(store, 'small', sampleMeta(), patternBody(1000, 1), 256)
  await storeBody(store, 'large', sampleMeta(), patternBody(3584, 2), 256)
  const raw = rawDb(path)
  const rows = raw
    .prepare('SELECT key, complete, length(body) AS inline, body_bytes, size_bytes FROM entries ORDER BY id')
    .all()
  assert.deepEqual(rows, [
    { key: 'small', complete: 1, inline: 1000, body_bytes: 1000, size_bytes: 1000 + metaBytes },
    { key: 'large', complete: 1, inline: null, body_bytes: 3584, size_bytes: 3584 + metaBytes },
  ])
  const chunks = raw.prepare('SELECT seq, length(data) AS bytes FROM chunks ORDER BY entry_id, seq').all()
  assert.deepEqual(chunks, [
    { seq: 0, bytes: 1024 },
    { seq: 1, bytes: 1024 },
    { seq: 2, bytes: 1024 },
    { seq: 3, bytes: 512 },
  ])
  assert.deepEqual(raw.prepare('SELECT bytes, entries FROM totals').get(), {
    bytes: 4584 + 2 * metaBytes,
    entries: 2,
  })
  assert.deepEqual(store.stats(), { totalBytes: 4584 + 2 * metaBytes, entryCount: 2 })
  raw.close()
  store.close()
})

test('SqliteStore entries persist across reopening the file', async () => {
  const path = newPath()
  const first = new SqliteStore({ path, chunkBytes: 1024 })
  await storeBody(first, 'inline', sampleMeta(), patternBody(500, 1))
  await storeBody(first, 'chunked', sampleMeta({ varyKey: 'v' }), patternBody(5000, 2))
  first.close()
  const second = new SqliteStore({ path, chunkBytes: 1024 })
  assert.deepEqual(await readBody(entryAt(second.get('inline'))), patternBody(500, 1))
  const chunked = entryAt(second.get('chunked'))
  assert.equal(chunked.varyKey, 'v')
  assert.deepEqual(await readBody(chunked), patternBody(5000, 2))
  assert.deepEqual(second.stats(), {
    totalBytes: 5500 + metaBytes + Buffer.byteLength(JSON.stringify(sampleMeta({ varyKey: 'v' }))),
    entryCount: 2,
  })
  second.close()
})

test('the default path honours UNDICI_CACHE_PATH and its parent directories are created', () => {
  const saved = process.env.UNDICI_CACHE_PATH
  try {
    const target = join(dir, 'from-env', 'nested', 'cache.db')
    process.env.UNDICI_CACHE_PATH = target
    assert.equal(defaultSqlitePath(), target)
    const store = new SqliteStore()
    assert.equal(store.path, target)
    assert.equal(existsSync(target), true)
    store.close()
    delete process.env.UNDICI_CACHE_PATH
    assert.equal(defaultSqlitePath(), join(process.cwd(), '.cache', 'undici-cache', 'http-cache.db'))
  } finally {
    if (saved === undefined) delete process.env.UNDICI_CACHE_PATH
    else process.env.UNDICI_CACHE_PATH = saved
  }
})

test('opening drops stale incomplete rows and orphan chunks, keeps live writes, recounts totals', async () => {
  const path = newPath()
  const store = new SqliteStore({ path })
  await storeBody(store, 'kept', sampleMeta(), patternBody(100, 1))
  store.close()
  const raw = rawDb(path)
  const insert = raw.prepare(
    `INSERT INTO entries (key, vary_key, complete, meta, written_ms, delete_at_ms) VALUES (?, '', 0, '{}', ?, 0)`,
  )
  const staleId = Number(insert.run('killed', Date.now() - STALE_WRITE_MS - 1000).lastInsertRowid)
  const liveId = Number(insert.run('live', Date.now()).lastInsertRowid)
  const chunk = raw.prepare('INSERT INTO chunks (entry_id, seq, data) VALUES (?, ?, ?)')
  chunk.run(staleId, 0, patternBody(10, 2))
  chunk.run(staleId, 1, patternBody(10, 3))
  chunk.run(liveId, 0, patternBody(10, 4))
  chunk.run(9999, 0, patternBody(10, 5))
  raw.prepare('UPDATE totals SET bytes = 12345, entries = 7').run()
  const reopened = new SqliteStore({ path })
  assert.deepEqual(raw.prepare('SELECT key FROM entries ORDER BY id').all(), [
    { key: 'kept' },
    { key: 'live' },
  ])
  assert.deepEqual(raw.prepare('SELECT entry_id, seq FROM chunks').all(), [{ entry_id: liveId, seq: 0 }])
  assert.deepEqual(reopened.stats(), { totalBytes: 100 + metaBytes, entryCount: 1 })
  raw.close()
  reopened.close()
})

test('two stores on one file see each other, including deletes and totals', async () => {
  const path = newPath()
  const one = new SqliteStore({ path, chunkBytes: 1024 })
  const two = new SqliteStore({ path, chunkBytes: 1024 })
  await storeBody(one, 'k', sampleMeta(), patternBody(3000, 1))
  assert.deepEqual(await readBody(entryAt(two.get('k'))), patternBody(3000, 1))
  await storeBody(two, 'k', sampleMeta(), patternBody(200, 2))
  assert.deepEqual(await readBody(entryAt(one.get('k'))), patternBody(200, 2))
  assert.deepEqual(one.stats(), { totalBytes: 200 + metaBytes, entryCount: 1 })
  two.delete('k')
  assert.deepEqual(one.get('k'), [])
  assert.deepEqual(one.stats(), { totalBytes: 0, entryCount: 0 })
  one.close()
  two.close()
})

test('a chunked write whose row another store deleted stores nothing', async () => {
  const path = newPath()
  const writerStore = new SqliteStore({ path, chunkBytes: 1024, bodyFiles: false })
  const other = new SqliteStore({ path, chunkBytes: 1024 })
  for (const deleteBeforeLastFlush of [true, false]) {
    const writer = writerStore.put('k', sampleMeta())
    assert.ok(writer)
    writer.write(patternBody(2000, 1))
    if (deleteBeforeLastFlush) other.delete('k')
    writer.write(patternBody(1500, 2))
    if (!deleteBeforeLastFlush) other.delete('k')
    writer.commit()
    assert.deepEqual(writerStore.get('k'), [])
  }
  const raw = rawDb(path)
  assert.deepEqual(raw.prepare('SELECT COUNT(*) AS n FROM chunks').get(), { n: 0 })
  raw.close()
  writerStore.close()
  other.close()
})

test('an entry written by another process is visible', async () => {
  const path = newPath()
  const store = new SqliteStore({ path })
  const sha256 = await writeFromChild(path, 'from-child', {
    sizeBytes: 5000,
    seed: 9,
    writeBytes: 500,
    chunkBytes: 1024,
  })
  const entry = entryAt(store.get('from-child'))
  assert.equal(entry.varyKey, 'child')
  assert.equal(entry.sizeBytes, 5000)
  const body = await readBody(entry)
  assert.deepEqual(body, patternBody(5000, 9))
  assert.equal(createHash('sha256').update(body).digest('hex'), sha256)
  store.close()
})

test('reading a body whose chunks were replaced meanwhile throws instead of ending short', async () => {
  // hotBytes: 0, to read the chunk rows themselves (the hot tier's reader is asynchronous).
  const store = new SqliteStore({ path: newPath(), chunkBytes: 1024, bodyFiles: false, hotBytes: 0 })
  await storeBody(store, 'k', sampleMeta(), patternBody(3000, 1))
  const old = entryAt(store.get('k'))
  const chunks = (old.readBody() as Iterable<Buffer>)[Symbol.iterator]()
  assert.deepEqual(chunks.next().value, patternBody(3000, 1).subarray(0, 1024))
  await storeBody(store, 'k', sampleMeta(), patternBody(3000, 2))
  assert.throws(() => chunks.next(), {
    message: `undici-cache: body of entry ${old.id} is gone (replaced or evicted while read)`,
  })
  assert.deepEqual(await readBody(entryAt(store.get('k'))), patternBody(3000, 2))
  store.close()
  assert.throws(() => [...(old.readBody() as Iterable<Buffer>)], /SqliteStore is closed/)
})

test('get records a use a minute after the commit, written USE_WRITE_DELAY_MS later with the others', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_800_000_000_000 })
  const path = newPath()
  const store = new SqliteStore({ path })
  await storeBody(store, 'k', sampleMeta(), patternBody(10, 1))
  const id = entryAt(store.get('k')).id as number
  const raw = rawDb(path)
  const lastUsed = () => raw.prepare(`SELECT last_used_ms AS ms FROM entries WHERE key = 'k'`).get()
  t.mock.timers.tick(59_999)
  store.get('k')
  await sleep(USE_WRITE_DELAY_MS + 50)
  assert.equal(usedBit(raw, id), false, 'within the minute of its commit')
  t.mock.timers.tick(1)
  store.get('k')
  assert.equal(usedBit(raw, id), false, 'not yet written')
  await sleep(USE_WRITE_DELAY_MS + 50)
  assert.equal(usedBit(raw, id), true)
  assert.deepEqual(lastUsed(), { ms: 1_800_000_000_000 }, 'the row is not written')
  raw.close()
  store.close()
})

test('a store closed under open writers drops them: later writes, commits and aborts store nothing', () => {
  const path = newPath()
  const store = new SqliteStore({ path, chunkBytes: 1024, bodyFiles: false })
  const flushed = store.put('a', sampleMeta())
  const pending = store.put('b', sampleMeta())
  assert.ok(flushed && pending)
  flushed.write(patternBody(1024, 1))
  pending.write(patternBody(100, 2))
  store.close()
  flushed.write(patternBody(1024, 3))
  pending.commit()
  flushed.abort()
  const raw = rawDb(path)
  assert.deepEqual(raw.prepare('SELECT COUNT(*) AS n FROM entries').get(), { n: 0 })
  assert.deepEqual(raw.prepare('SELECT COUNT(*) AS n FROM chunks').get(), { n: 0 })
  raw.close()
})

test('update and eviction keep the totals equal to a recount', async () => {
  const path = newPath()
  const store = new SqliteStore({ path, chunkBytes: 1024, maxBytes: 12_000, maxEntries: 4 })
  for (let i = 0; i < 6; i++) await storeBody(store, `k${i % 5}`, sampleMeta(), patternBody(2500, i))
  const entry = entryAt(store.get('k3'))
  store.update('k3', entry.id, sampleMeta({ headers: { etag: '"a-much-longer-validator-value"' } }))
  const raw = rawDb(path)
  const recount = raw
    .prepare('SELECT SUM(size_bytes) AS totalBytes, COUNT(*) AS entryCount FROM entries WHERE complete = 1')
    .get()
  assert.deepEqual(store.stats(), recount)
  assert.deepEqual(
    ['k0', 'k1', 'k2', 'k3', 'k4'].filter((key) => store.get(key).length > 0),
    ['k0', 'k2', 'k3', 'k4'],
  )
  raw.close()
  store.close()
})

const KNOWN =
  'known: path, maxBytes, maxEntryBytes, maxEntries, chunkBytes, sweepIntervalMs, onCorrupt, hotBytes, bodyFiles'
const invalidOptions: [unknown, ErrorConstructor, string][] = [
  [{ maxBytes: -1 }, RangeError, 'SqliteStore option maxBytes must be a positive integer (bytes), got -1'],
  [
    { maxBytes: 2 ** 60 },
    RangeError,
    `SqliteStore option maxBytes must be a positive integer (bytes), got ${2 ** 60}`,
  ],
  [
    { maxEntryBytes: '5' },
    TypeError,
    'SqliteStore option maxEntryBytes must be a positive integer (bytes), got "5"',
  ],
  [
    { maxEntries: 0 },
    RangeError,
    'SqliteStore option maxEntries must be a positive integer (entries), got 0',
  ],
  [
    { maxEntries: 10n },
    TypeError,
    'SqliteStore option maxEntries must be a positive integer (entries), got 10n',
  ],
  [
    { chunkBytes: 1023 },
    RangeError,
    'SqliteStore option chunkBytes must be an integer from 1024 to 16777216 (bytes), got 1023',
  ],
  [
    { chunkBytes: 2 ** 40 },
    RangeError,
    'SqliteStore option chunkBytes must be an integer from 1024 to 16777216 (bytes), got 1099511627776',
  ],
  [
    { chunkBytes: Number.POSITIVE_INFINITY },
    RangeError,
    'SqliteStore option chunkBytes must be an integer from 1024 to 16777216 (bytes), got Infinity',
  ],
  [
    { chunkBytes: [1024] },
    TypeError,
    'SqliteStore option chunkBytes must be an integer from 1024 to 16777216 (bytes), got an array',
  ],
  [{ path: '' }, RangeError, 'SqliteStore option path must be a non-empty string, got ""'],
  [{ path: 7 }, TypeError, 'SqliteStore option path must be a non-empty string, got 7'],
  [{ path: {} }, TypeError, 'SqliteStore option path must be a non-empty string, got an object'],
  [{ path: () => 'x' }, TypeError, 'SqliteStore option path must be a non-empty string, got a function'],
  [{ path: 'cache.db\0x' }, TypeError, 'SqliteStore option path must not contain a NUL character'],
  [
    { sweepIntervalMs: -1 },
    RangeError,
    'SqliteStore option sweepIntervalMs must be an integer from 0 to 2147483647 (ms), got -1',
  ],
  [
    { sweepIntervalMs: 2 ** 31 },
    RangeError,
    `SqliteStore option sweepIntervalMs must be an integer from 0 to 2147483647 (ms), got ${2 ** 31}`,
  ],
  [
    { sweepIntervalMs: '60s' },
    TypeError,
    'SqliteStore option sweepIntervalMs must be an integer from 0 to 2147483647 (ms), got "60s"',
  ],
  [
    { onCorrupt: 'delete' },
    RangeError,
    'SqliteStore option onCorrupt must be "fail" or "recreate", got "delete"',
  ],
  [{ onCorrupt: true }, TypeError, 'SqliteStore option onCorrupt must be "fail" or "recreate", got true'],
  [{ bodyFiles: 'yes' }, TypeError, 'SqliteStore option bodyFiles must be true or false, got "yes"'],
  [{ maxEntrySize: 1 }, TypeError, `SqliteStore has no option maxEntrySize (${KNOWN})`],
  [{ filename: 'x.db' }, TypeError, `SqliteStore has no option filename (${KNOWN})`],
  ['x.db', TypeError, 'SqliteStore options must be an object, got "x.db"'],
  [[], TypeError, 'SqliteStore options must be an object, got an array'],
  [true, TypeError, 'SqliteStore options must be an object, got true'],
]

for (const [options, type, message] of invalidOptions) {
  test(`SqliteStore rejects ${inspect(options)}`, () => {
    assert.throws(
      () => new SqliteStore(options as never),
      (error: unknown) => {
        assert.ok(error instanceof type)
        assert.equal((error as Error).message, message)
        return true
      },
    )
  })
}

test('SqliteStore takes maxEntryBytes up to maxBytes, and limits at their minimum', async () => {
  const store = new SqliteStore({
    path: ':memory:',
    maxBytes: 5000,
    maxEntryBytes: 9000,
    maxEntries: 1,
    chunkBytes: 1024,
  })
  assert.equal(store.put('k', sampleMeta(), 5001), undefined)
  // a body of maxBytes leaves no room for its metadata: refused too
  assert.equal(store.put('k', sampleMeta(), 5000), undefined)
  assert.ok(store.put('k', sampleMeta(), 4000))
  await storeBody(store, 'a', sampleMeta(), patternBody(10, 1))
  await storeBody(store, 'b', sampleMeta(), patternBody(10, 2))
  assert.deepEqual(store.stats(), { totalBytes: 10 + metaBytes, entryCount: 1 })
  assert.deepEqual(await readChunks(entryAt(store.get('b'))), [patternBody(10, 2)])
  store.close()
})
