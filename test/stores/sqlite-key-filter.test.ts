import assert from 'node:assert/strict'
import { mkdtempSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { setImmediate as nextMacrotask, setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import fc from 'fast-check'
import { DataVersion, OTHER_WRITER_CHECK_MS } from '../../lib/stores/sqlite-data-version.js'
import {
  KeyFilter,
  type KeySource,
  MIN_CAPACITY_KEYS,
  SCAN_STEP,
} from '../../lib/stores/sqlite-key-filter.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { SqliteTables } from '../../lib/stores/sqlite-tables.js'
import { draftOf } from '../../lib/stores/sqlite-writer.js'
import { entryAt, sampleMeta, storeBody } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-key-filter-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

const dataVersionOf = (tables: SqliteTables) => new DataVersion(() => tables.dataVersion())

/** A new file with the store's schema, the filter's own connection to it, and a filter. */
function openFilter(before?: (path: string) => void) {
  const path = join(dir, `filter-${files++}.db`)
  new SqliteStore({ path }).close()
  before?.(path)
  const tables = new SqliteTables(path, Date.now())
  const filter = new KeyFilter(
    tables.keyReads(),
    dataVersionOf(tables),
    tables.totals().entries,
    realpathSync(path),
  )
  assert.equal(filter.ready, false, 'nothing is read before a lookup has found nothing')
  assert.equal(filter.mayHold('https://example.test/anything'), true)
  filter.missed()
  const close = () => {
    filter.close()
    tables.close()
  }
  return { path, tables, filter, close }
}

/** Another process's connection: its rows reach the filter only through data_version. */
function otherProcess(path: string) {
  const db = new Database(path)
  const insert = db.prepare(
    `INSERT INTO entries (key, vary_key, meta, complete, written_ms, delete_at_ms) VALUES (?, '', '{}', 1, 0, 0)`,
  )
  const remove = db.prepare('DELETE FROM entries WHERE key = ?')
  return {
    write: db.transaction((keys: string[]) => {
      for (const key of keys) insert.run(key)
    }),
    remove: db.transaction((keys: string[]) => {
      for (const key of keys) remove.run(key)
    }),
    close: () => db.close(),
  }
}

async function untilReady(filter: KeyFilter): Promise<void> {
  for (let steps = 0; !filter.ready; steps++) {
    assert.ok(steps < 10_000, 'the scan never finished')
    await nextMacrotask()
  }
}

const keysOf = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${i}`)

test('no key written is ever reported absent: this store, this process, another process', async () => {
  // the peers' bodies: inline, in chunk rows, in a body file (a row inserted before its commit)
  const bodies = { peer: Buffer.from('body'), chunks: Buffer.alloc(3000, 'c'), file: Buffer.alloc(3000, 'f') }
  const op = fc.oneof(
    fc.record({ by: fc.constantFrom('peer' as const, 'chunks' as const, 'file' as const), key: fc.nat(40) }),
    fc.record({ by: fc.constant('other' as const), key: fc.nat(40) }),
    fc.record({ by: fc.constant('delete' as const), key: fc.nat(40) }),
    fc.record({ by: fc.constant('wait' as const), key: fc.constant(0) }),
  )
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
      const { path, filter, close } = openFilter()
      const peers = {
        peer: new SqliteStore({ path }),
        chunks: new SqliteStore({ path, chunkBytes: 1024, bodyFiles: false }),
        file: new SqliteStore({ path, chunkBytes: 1024 }),
      }
      const other = otherProcess(path)
      // keys in the file the filter must hold by now, and keys another process wrote since the last wait
      const written = new Set<string>()
      const unseen = new Set<string>()
      const wait = async () => {
        await sleep(OTHER_WRITER_CHECK_MS + 1)
        for (const url of unseen) written.add(url)
        unseen.clear()
      }
      try {
        for (const { by, key } of ops) {
          const url = `https://example.test/${key}`
          if (by === 'peer' || by === 'chunks' || by === 'file') {
            await storeBody(peers[by], url, sampleMeta({ requestTimeMs: Date.now() }), bodies[by], 1024)
            assert.equal(peers[by].get(url).length, 1)
            written.add(url)
          } else if (by === 'other') {
            other.write([url])
            unseen.add(url)
          } else if (by === 'delete') {
            peers.peer.delete(url)
            written.delete(url)
            unseen.delete(url)
            // another store object's write whose request was sent in the delete's millisecond is refused
            await sleep(1)
          } else {
            await wait()
          }
          for (const url of written) assert.equal(filter.mayHold(url), true, `${url} after ${by}`)
        }
        await wait()
        for (const url of written) assert.equal(filter.mayHold(url), true, `${url} at the end`)
        assert.equal(filter.mayHold('https://example.test/never'), false)
      } finally {
        other.close()
        for (const peer of Object.values(peers)) peer.close()
        close()
      }
    }),
    { numRuns: 25 },
  )
})

/** Lets the filter see another process's commit, then waits for its scan to end. */
async function seen(filter: KeyFilter): Promise<void> {
  await sleep(OTHER_WRITER_CHECK_MS + 1)
  filter.mayHold('https://example.test/look')
  await untilReady(filter)
}

test('absent keys: under 1% look present, also after the filter was rebuilt larger', async () => {
  const { path, filter, close } = openFilter()
  const other = otherProcess(path)
  const stored = keysOf('https://example.test/stored/', 2.5 * MIN_CAPACITY_KEYS)
  other.write(stored)
  await sleep(OTHER_WRITER_CHECK_MS + 1)
  assert.equal(filter.mayHold('https://example.test/absent/0'), true, 'asked while the scan runs')
  await untilReady(filter)
  for (const key of stored) assert.equal(filter.mayHold(key), true, key)
  const absent = keysOf('https://example.test/absent/', 20_000)
  const falsePositives = absent.filter((key) => filter.mayHold(key)).length
  assert.ok(
    falsePositives < absent.length * 0.01,
    `${falsePositives} of ${absent.length} absent keys looked present`,
  )
  other.close()
  close()
})

test('deleted keys: the filter is rebuilt for the rows the file holds, and stays that size', async () => {
  const { path, filter, close } = openFilter()
  const sizeBytes = filter.sizeBytes
  const other = otherProcess(path)
  let previous: string[] = []
  for (let batch = 0; batch < 6; batch++) {
    const keys = keysOf(`https://example.test/batch-${batch}/`, 50_000)
    other.write(keys)
    other.remove(previous)
    previous = keys
    await seen(filter)
    for (const key of keys) assert.equal(filter.mayHold(key), true, key)
  }
  assert.equal(filter.sizeBytes, sizeBytes, '300 000 keys went through; 50 000 rows at a time')
  other.close()
  close()
})

test('a step reads at most SCAN_STEP: rows, or characters of keys', () => {
  const { path, tables, close } = openFilter()
  const other = otherProcess(path)
  other.write(keysOf(`https://example.test/${'long/'.repeat(1_600)}`, 100))
  other.write(keysOf('https://example.test/short/', 2 * SCAN_STEP.rows))
  const reads = tables.keyReads()
  const longKeys = reads.keysInOrder(undefined, SCAN_STEP)
  // 8 000-character keys: the 9th brings the step past 64 KiB of characters
  assert.equal(longKeys.rows.length, 9)
  assert.equal(longKeys.more, true)
  assert.equal(reads.keysAfter(0, SCAN_STEP).rows.length, 9)
  const short = reads.keysAfter(100, SCAN_STEP)
  assert.equal(short.rows.length, SCAN_STEP.rows)
  assert.equal(short.more, true)
  const last = reads.keysAfter(100 + SCAN_STEP.rows, SCAN_STEP)
  assert.deepEqual([last.rows.length, last.more], [SCAN_STEP.rows, true])
  assert.deepEqual(reads.keysAfter(100 + 2 * SCAN_STEP.rows, SCAN_STEP), { rows: [], more: false })
  other.close()
  close()
})

test('keys with a lone surrogate (SQLite keeps another string for them) are always looked up in SQLite', async () => {
  const path = join(dir, `surrogates-${files++}.db`)
  const store = new SqliteStore({ path })
  assert.deepEqual(store.get('https://example.test/first-miss'), [])
  const keys = [
    'https://a.test/x\uD800y',
    'https://a.test/\uDC00',
    'https://a.test/😀',
    'https://a.test/\uFFFD!',
  ]
  for (const key of keys) await storeBody(store, key, sampleMeta(), Buffer.from(key))
  store.close()
  const reopened = new SqliteStore({ path })
  assert.deepEqual(reopened.get('https://example.test/first-miss'), [])
  await sleep(10)
  for (const key of keys) assert.equal(reopened.get(key).length, 1, JSON.stringify(key))
  assert.deepEqual(reopened.get('https://a.test/absent\uD800'), [])
  reopened.close()
})

test('a file opened with rows: read from the key index in steps; rows written meanwhile are found', async () => {
  const before = keysOf('https://example.test/before/', 2 * SCAN_STEP.rows + 7)
  let other: ReturnType<typeof otherProcess> | undefined
  const { filter, close } = openFilter((path) => {
    other = otherProcess(path)
    other.write(before)
  })
  assert.equal(filter.ready, false)
  assert.equal(filter.mayHold('https://example.test/absent'), true, 'every key may be present until then')
  const meanwhile = keysOf('https://example.test/meanwhile/', 5)
  other?.write(meanwhile)
  await untilReady(filter)
  for (const key of [...before, ...meanwhile]) assert.equal(filter.mayHold(key), true, key)
  assert.equal(filter.mayHold('https://example.test/absent'), false)
  other?.close()
  close()
})

test("another process's commit is seen once OTHER_WRITER_CHECK_MS has passed", async () => {
  const { path, filter, close } = openFilter()
  const other = otherProcess(path)
  const key = 'https://example.test/late'
  assert.equal(filter.mayHold(key), false)
  other.write([key])
  await sleep(OTHER_WRITER_CHECK_MS + 1)
  assert.equal(filter.mayHold(key), true)
  other.close()
  close()
})

test('a commit by another store of this process on the file is seen at once', async () => {
  const { path, filter, close } = openFilter()
  const peer = new SqliteStore({ path })
  // only within one OTHER_WRITER_CHECK_MS of the filter's last look is the peer's word the only way in
  let decisive = 0
  for (let attempt = 0; attempt < 20 && decisive < 3; attempt++) {
    const key = `https://example.test/peer/${attempt}`
    await storeBody(peer, key, sampleMeta(), Buffer.from('body'))
    assert.equal(filter.mayHold('https://example.test/warm'), false)
    const lookedMs = performance.now()
    peer.get(key)
    const present = filter.mayHold(key)
    if (performance.now() - lookedMs >= OTHER_WRITER_CHECK_MS) continue
    assert.equal(present, true)
    decisive++
  }
  assert.equal(decisive, 3)
  peer.close()
  close()
})

test("the rows a connection commits reach its filter as they are; after another process's, they are read", async () => {
  const path = join(dir, `own-rows-${files++}.db`)
  new SqliteStore({ path }).close()
  const tables = new SqliteTables(path, Date.now())
  const reads = tables.keyReads()
  let rowReads = 0
  const counted: KeySource = {
    maxId: () => reads.maxId(),
    totals: () => reads.totals(),
    keysAfter: (afterId, budget) => {
      rowReads++
      return reads.keysAfter(afterId, budget)
    },
    keysInOrder: (afterKey, budget) => reads.keysInOrder(afterKey, budget),
  }
  // wired as SqliteStore wires its own filter: one connection writes and reads
  const filter = new KeyFilter(counted, dataVersionOf(tables), 0, undefined)
  tables.onWritten = (inserted) => filter.wrote(inserted)
  filter.missed()
  await untilReady(filter)
  const limits = { maxBytes: 1 << 30, maxEntries: 1000 }
  const commit = (key: string, entryId?: number) =>
    tables.commit({
      draft: draftOf(key, sampleMeta()),
      entryId,
      seq: entryId === undefined ? 0 : 1,
      data: Buffer.from('body'),
      nowMs: Date.now(),
      bodyBytes: entryId === undefined ? 4 : 8,
      limits,
      inFile: false,
    })
  const other = otherProcess(path)
  const readsBefore = rowReads
  commit('https://example.test/inline')
  // a chunked entry: its row is inserted with its first chunk, before the commit
  const chunked = { draft: draftOf('https://example.test/chunked', sampleMeta()), seq: 0, nowMs: Date.now() }
  const entryId = tables.appendChunk({ ...chunked, entryId: undefined, data: Buffer.from('body') })
  commit('https://example.test/chunked', entryId)
  assert.equal(rowReads, readsBefore, 'no read for the rows this connection committed')
  assert.equal(filter.mayHold('https://example.test/inline'), true)
  assert.equal(filter.mayHold('https://example.test/chunked'), true)
  // another process's row comes between: the next commit here reads from the last row added on
  other.write(['https://example.test/other'])
  commit('https://example.test/after')
  assert.equal(rowReads, readsBefore + 1)
  assert.equal(filter.mayHold('https://example.test/other'), true, 'read with the commit')
  assert.equal(filter.mayHold('https://example.test/after'), true)
  assert.equal(filter.mayHold('https://example.test/absent'), false)
  other.close()
  filter.close()
  tables.close()
})

test('two SqliteStores of one process on one file: what one commits, the other finds at once', async () => {
  const path = join(dir, `stores-${files++}.db`)
  const first = new SqliteStore({ path })
  const second = new SqliteStore({ path })
  const key = 'https://example.test/shared'
  assert.deepEqual(first.get(key), [])
  await storeBody(second, key, sampleMeta(), Buffer.from('shared body'))
  assert.equal(entryAt(first.get(key)).statusCode, 200)
  assert.deepEqual(first.get('https://example.test/other'), [])
  second.close()
  first.close()
})

test('a step ending on a key with a lone surrogate: the keys after it are not skipped', async () => {
  const path = join(dir, `cursor-${files++}.db`)
  const store = new SqliteStore({ path })
  const body = Buffer.from('x')
  // the step's last key: stored as other bytes than the U+FFFD it reads back as, which sort higher
  const fillers = keysOf('https://a.test/0', SCAN_STEP.rows - 1)
  for (const key of [...fillers, 'https://a.test/\uD800']) await storeBody(store, key, sampleMeta(), body)
  const between = [
    'https://a.test/\uE000',
    'https://a.test/\uF900abc',
    'https://a.test/\uFF01',
    'https://a.test/\uFFFD',
  ]
  for (const key of between) await storeBody(store, key, sampleMeta(), body)
  store.close()
  const reopened = new SqliteStore({ path })
  assert.deepEqual(reopened.get('https://example.test/first-miss'), [])
  await sleep(20)
  for (const key of between) assert.equal(reopened.get(key).length, 1, JSON.stringify(key))
  assert.equal(reopened.get(fillers[0] as string).length, 1)
  reopened.close()
})

test('a file that cannot be read: the filter gives up, and every key may be present', async () => {
  const { tables, filter, close } = openFilter((path) => {
    const other = otherProcess(path)
    other.write(keysOf('https://example.test/k/', SCAN_STEP.rows + 1))
    other.close()
  })
  assert.equal(filter.ready, false, 'one step read, one to come')
  // the connection fails under the filter before its next step (as a damaged page would)
  tables.close()
  await sleep(10)
  assert.equal(filter.mayHold('https://example.test/absent'), true)
  assert.equal(filter.ready, false)
  close()
})

test('a read that failed: lookups go to SQLite until the next miss builds the filter again', () => {
  const { path, tables, close } = openFilter()
  const other = otherProcess(path)
  other.write(['https://example.test/stored'])
  const reads = tables.keyReads()
  let failures = 1
  // the file's real reads, one of which fails (as a disk error would)
  const flaky: KeySource = {
    maxId: () => reads.maxId(),
    totals: () => reads.totals(),
    keysAfter: (afterId, budget) => reads.keysAfter(afterId, budget),
    keysInOrder: (afterKey, budget) => {
      if (failures-- > 0) throw new Error('SQLITE_IOERR: disk I/O error')
      return reads.keysInOrder(afterKey, budget)
    },
  }
  const filter = new KeyFilter(flaky, dataVersionOf(tables), 0, undefined)
  filter.missed()
  assert.equal(filter.ready, false)
  assert.equal(filter.mayHold('https://example.test/absent'), true)
  filter.missed()
  assert.equal(filter.ready, true)
  assert.equal(filter.mayHold('https://example.test/absent'), false)
  assert.equal(filter.mayHold('https://example.test/stored'), true)
  filter.close()
  other.close()
  close()
})

test('a file that cannot be read at the first step: the filter gives up at once', () => {
  const path = join(dir, `failing-${files++}.db`)
  new SqliteStore({ path }).close()
  const tables = new SqliteTables(path, Date.now())
  const filter = new KeyFilter(tables.keyReads(), dataVersionOf(tables), 0, undefined)
  tables.close()
  filter.missed()
  assert.equal(filter.ready, false)
  assert.equal(filter.mayHold('https://example.test/absent'), true)
})
