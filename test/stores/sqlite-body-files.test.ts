import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import Database from 'better-sqlite3'
import { STALE_WRITE_MS } from '../../lib/stores/sqlite-liveness.js'
import { SqliteStore, type SqliteStoreOptions } from '../../lib/stores/sqlite-store.js'
import { FILE_WRITER_MARK_MS } from '../../lib/stores/sqlite-writer.js'
import type { EntryMeta } from '../../lib/stores/store.js'
import {
  bodyDirOf,
  bodyFileNames,
  bodyFileOf,
  entryAt,
  linuxOnly,
  openBodyFds,
  patternBody,
  readBody,
  readChunks,
  sampleMeta,
  storeBody,
} from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-body-files-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const newPath = () => join(dir, `store-${files++}.db`)
const metaBytesOf = (meta: EntryMeta) => Buffer.byteLength(JSON.stringify(meta))
/** Never swept: these entries stay until replaced, deleted or evicted. */
const KEPT = sampleMeta({ deleteAtMs: 0 })

function openStore(path: string, options: SqliteStoreOptions = {}): SqliteStore {
  return new SqliteStore({ path, chunkBytes: 1024, sweepIntervalMs: 0, ...options })
}

/** Runs `query` on a plain connection to the store's file. */
function query<T>(path: string, sql: string, ...params: unknown[]): T[] {
  const raw = new Database(path, { readonly: true })
  try {
    return raw.prepare(sql).all(...params) as T[]
  } finally {
    raw.close()
  }
}

/** Asserts the body files are exactly `ids`, and exactly the complete rows with body_file = 1. */
function assertFiles(path: string, ids: unknown[], step: string): void {
  const rows = query<{ id: number }>(path, 'SELECT id FROM entries WHERE complete = 1 AND body_file = 1')
  assert.deepEqual(bodyFileNames(path), ids.map(String), step)
  assert.deepEqual(
    rows.map((row) => String(row.id)),
    ids.map(String),
    `${step}: rows`,
  )
  assert.deepEqual(query(path, 'SELECT id FROM entries WHERE complete = 0'), [], `${step}: incomplete rows`)
}

const idOf = (store: SqliteStore, key: string) => entryAt(store.get(key)).id

test('a body of chunkBytes or more is one file named by its id; a shorter one stays inline', async () => {
  const path = newPath()
  const store = openStore(path)
  const meta = sampleMeta()
  await storeBody(store, 'long', meta, patternBody(3584, 1))
  await storeBody(store, 'short', meta, patternBody(1023, 2))
  // Flushed at its last write: a body of exactly chunkBytes is a file too.
  await storeBody(store, 'one-chunk', meta, patternBody(1024, 3))
  const rows = query(
    path,
    `SELECT id, key, complete, body_file, length(body) AS inline, body_bytes, size_bytes
      FROM entries ORDER BY id`,
  )
  const [longId, shortId, oneChunkId] = [idOf(store, 'long'), idOf(store, 'short'), idOf(store, 'one-chunk')]
  const metaBytes = metaBytesOf(meta)
  assert.deepEqual(rows, [
    row(longId, 'long', 1, null, 3584),
    row(shortId, 'short', 0, 1023, 1023),
    row(oneChunkId, 'one-chunk', 1, null, 1024),
  ])
  function row(id: unknown, key: string, bodyFile: number, inline: number | null, bodyBytes: number) {
    const sizeBytes = bodyBytes + metaBytes
    return { id, key, complete: 1, body_file: bodyFile, inline, body_bytes: bodyBytes, size_bytes: sizeBytes }
  }
  assert.deepEqual(query(path, 'SELECT COUNT(*) AS n FROM chunks'), [{ n: 0 }])
  assert.deepEqual(bodyFileNames(path), [String(longId), String(oneChunkId)])
  assert.deepEqual(readFileSync(bodyFileOf(path, longId)), patternBody(3584, 1))
  assert.deepEqual(readFileSync(bodyFileOf(path, oneChunkId)), patternBody(1024, 3))
  assert.deepEqual(store.stats(), { totalBytes: 3584 + 1023 + 1024 + 3 * metaBytes, entryCount: 3 })
  const long = entryAt(store.get('long'))
  assert.equal(long.body, undefined)
  assert.equal(long.sizeBytes, 3584)
  assert.deepEqual(await readChunks(long), [patternBody(3584, 1)])
  assert.deepEqual(entryAt(store.get('short')).body, patternBody(1023, 2))
  store.close()
})

test('a store opened through a symbolic link keeps its body files beside the real file', async () => {
  const real = newPath()
  const link = newPath()
  new SqliteStore({ path: real }).close()
  symlinkSync(real, link)
  const throughLink = new SqliteStore({ path: link, chunkBytes: 1024 })
  const direct = new SqliteStore({ path: real, chunkBytes: 1024 })
  const body = patternBody(5000, 1)
  await storeBody(throughLink, 'k', sampleMeta(), body)
  assert.deepEqual(await readBody(entryAt(direct.get('k'))), body)
  assert.equal(existsSync(`${link}-bodies`), false)
  throughLink.close()
  direct.close()
})

test('a body directory removed under a running store is made again by the next body file', async () => {
  const path = newPath()
  const store = openStore(path, { hotBytes: 0 })
  await storeBody(store, 'first', KEPT, patternBody(3584, 1))
  rmSync(bodyDirOf(path), { recursive: true })
  assert.equal(await storeBody(store, 'second', KEPT, patternBody(3584, 2)), true)
  const second = entryAt(store.get('second'))
  assert.deepEqual(bodyFileNames(path), [String(second.id)])
  assert.deepEqual(await readChunks(second), [patternBody(3584, 2)])
  store.close()
})

test('replace, delete, eviction (maxEntries, maxBytes, too big alone) and sweep remove files; update keeps it', async () => {
  const path = newPath()
  const store = openStore(path, { maxEntries: 3 })
  await storeBody(store, 'k1', KEPT, patternBody(2000, 1))
  const first = idOf(store, 'k1')
  assertFiles(path, [first], 'first write')
  await storeBody(store, 'k1', KEPT, patternBody(2000, 2))
  const k1 = idOf(store, 'k1')
  assert.notEqual(k1, first)
  assertFiles(path, [k1], 'same variant replaced')
  await storeBody(store, 'k1', { ...KEPT, varyKey: 'other' }, patternBody(2000, 3))
  const other = entryAt(store.get('k1')).id
  assertFiles(path, [k1, other], 'another variant kept')
  store.update('k1', other, { ...KEPT, varyKey: '', headers: { etag: '"x"' } })
  assertFiles(path, [other], 'update onto the first variant replaced it')
  assert.deepEqual(entryAt(store.get('k1')).headers, { etag: '"x"' })
  assert.deepEqual(await readBody(entryAt(store.get('k1'))), patternBody(2000, 3))

  await storeBody(store, 'k2', KEPT, patternBody(2000, 4))
  assertFiles(path, [other, idOf(store, 'k2')], 'k2 written')
  store.delete('k2')
  assertFiles(path, [other], 'k2 deleted')

  const ids = []
  for (const key of ['k3', 'k4', 'k5']) {
    await storeBody(store, key, KEPT, patternBody(2000, 5))
    ids.push(idOf(store, key))
  }
  assert.deepEqual(store.get('k1'), [])
  assertFiles(path, ids, 'k1 evicted by maxEntries')

  // Another store on the file with a tighter maxBytes: its commit evicts the two least recently used.
  const tight = openStore(path, { maxBytes: 2 * (2000 + metaBytesOf(KEPT)) + 100 })
  await storeBody(tight, 'k6', KEPT, patternBody(2000, 6))
  const k6 = idOf(tight, 'k6')
  assertFiles(path, [ids[2], k6], 'k3 and k4 evicted by maxBytes')
  // A body under maxBytes whose metadata takes it over: not stored, its file removed, nothing evicted.
  await storeBody(tight, 'huge', KEPT, patternBody(2 * (2000 + metaBytesOf(KEPT)), 7))
  assert.deepEqual(tight.get('huge'), [])
  assertFiles(path, [ids[2], k6], 'nothing evicted for it')
  assert.deepEqual(tight.stats(), { totalBytes: 2 * (2000 + metaBytesOf(KEPT)), entryCount: 2 })
  tight.close()

  const expired = sampleMeta({ deleteAtMs: Date.now() - 1000 })
  await storeBody(store, 'e1', expired, patternBody(2000, 8))
  await storeBody(store, 'kept', KEPT, patternBody(2000, 9))
  await storeBody(store, 'e2', expired, patternBody(1500, 10))
  assert.equal(bodyFileNames(path).length, 3)
  assert.equal(store.sweep(), 2)
  assertFiles(path, [idOf(store, 'kept')], 'expired entries swept')
  assert.deepEqual(await readBody(entryAt(store.get('kept'))), patternBody(2000, 9))
  assert.deepEqual(store.stats(), { totalBytes: 2000 + metaBytesOf(KEPT), entryCount: 1 })
  store.close()
})

test('abort after the file was made removes file and row; a body past maxEntryBytes leaves neither', () => {
  const path = newPath()
  const store = openStore(path, { maxEntryBytes: 3000 })
  const aborted = store.put('k', KEPT)
  assert.ok(aborted)
  aborted.write(patternBody(2000, 1))
  const [row] = query<{ id: number }>(path, 'SELECT id, complete, body_file FROM entries')
  assert.deepEqual(row, { id: row?.id, complete: 0, body_file: 1 })
  assert.deepEqual(bodyFileNames(path), [String(row?.id)])
  assert.deepEqual(readFileSync(bodyFileOf(path, row?.id)), patternBody(2000, 1))
  aborted.abort()
  assert.deepEqual(bodyFileNames(path), [])
  assert.deepEqual(query(path, 'SELECT id FROM entries'), [])

  const tooLong = store.put('k', KEPT)
  assert.ok(tooLong)
  tooLong.write(patternBody(2048, 2))
  assert.equal(bodyFileNames(path).length, 1)
  tooLong.write(patternBody(1000, 3))
  assert.deepEqual(bodyFileNames(path), [])
  tooLong.write(patternBody(1000, 4))
  tooLong.commit()
  assert.deepEqual(bodyFileNames(path), [])
  assert.deepEqual(query(path, 'SELECT id FROM entries'), [])
  assert.deepEqual(store.get('k'), [])
  store.close()
})

test('a file write whose key another store deleted stores nothing and leaves no file', () => {
  const path = newPath()
  const writerStore = openStore(path)
  const other = openStore(path)
  for (const deleteBeforeLastFlush of [true, false]) {
    const writer = writerStore.put('k', KEPT)
    assert.ok(writer)
    writer.write(patternBody(2000, 1))
    assert.equal(bodyFileNames(path).length, 1)
    if (deleteBeforeLastFlush) {
      other.delete('k')
      assert.deepEqual(bodyFileNames(path), [], 'the deleter removes the file of the incomplete row')
    }
    writer.write(patternBody(1500, 2))
    if (!deleteBeforeLastFlush) other.delete('k')
    writer.commit()
    assert.deepEqual(writerStore.get('k'), [])
    assert.deepEqual(bodyFileNames(path), [])
    assert.deepEqual(query(path, 'SELECT id FROM entries'), [])
    assert.deepEqual(query(path, 'SELECT COUNT(*) AS n FROM chunks'), [{ n: 0 }])
  }
  // A row removed without its file (as by a process killed between the two): the commit removes the file.
  const writer = writerStore.put('k', KEPT)
  assert.ok(writer)
  writer.write(patternBody(2000, 3))
  const raw = new Database(path)
  raw.prepare(`DELETE FROM entries WHERE key = 'k'`).run()
  raw.close()
  assert.equal(bodyFileNames(path).length, 1)
  writer.commit()
  assert.deepEqual(bodyFileNames(path), [])
  assert.deepEqual(writerStore.get('k'), [])
  assert.deepEqual(writerStore.stats(), { totalBytes: 0, entryCount: 0 })
  writerStore.close()
  other.close()
})

test(
  'a file writer whose row was deleted stops at its next mark, FILE_WRITER_MARK_MS later',
  linuxOnly,
  (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_800_000_000_000 })
    const path = newPath()
    const writerStore = openStore(path)
    const other = openStore(path)
    const writer = writerStore.put('k', KEPT)
    assert.ok(writer)
    writer.write(patternBody(2000, 1))
    const [name] = bodyFileNames(path)
    const file = bodyFileOf(path, name)
    other.delete('k')
    assert.deepEqual(openBodyFds(path), [`${file} (deleted)`])
    t.mock.timers.tick(FILE_WRITER_MARK_MS - 1)
    writer.write(patternBody(1024, 2))
    assert.deepEqual(openBodyFds(path), [`${file} (deleted)`], 'no mark yet: still writing')
    t.mock.timers.tick(1)
    writer.write(patternBody(1024, 3))
    assert.deepEqual(openBodyFds(path), [], 'the mark found no row: aborted, descriptor closed')
    writer.write(patternBody(1024, 4))
    writer.commit()
    assert.deepEqual(writerStore.get('k'), [])
    assert.deepEqual(bodyFileNames(path), [])
    assert.deepEqual(query(path, 'SELECT id FROM entries'), [])
    writerStore.close()
    other.close()
  },
)

/** The row of a writer killed an hour ago, and part of its file; returns its id. */
function insertKilled(path: string): number {
  const raw = new Database(path)
  const insert =
    raw.prepare(`INSERT INTO entries (key, vary_key, complete, meta, body_file, written_ms, delete_at_ms)
    VALUES ('killed', '', 0, '{}', 1, ?, 0)`)
  const killedId = Number(insert.run(Date.now() - STALE_WRITE_MS - 1000).lastInsertRowid)
  raw.close()
  writeFileSync(bodyFileOf(path, killedId), patternBody(500, 3))
  return killedId
}

test('opening removes orphan files and a killed writer’s file; keeps live writes, entries and other names', async () => {
  const path = newPath()
  const first = openStore(path)
  await storeBody(first, 'done', KEPT, patternBody(3000, 1))
  const doneId = idOf(first, 'done')
  const live = first.put('live', KEPT)
  assert.ok(live)
  live.write(patternBody(2000, 2))
  const [liveRow] = query<{ id: number }>(path, 'SELECT id FROM entries WHERE complete = 0')
  const liveId = liveRow?.id
  const killedId = insertKilled(path)
  assert.equal(existsSync(bodyFileOf(path, killedId)), true)
  writeFileSync(bodyFileOf(path, 999_999), 'no row')
  writeFileSync(bodyFileOf(path, 'notes.txt'), 'not a body')
  writeFileSync(bodyFileOf(path, '0012'), 'not an id as written')
  assert.equal(bodyFileNames(path).length, 6)

  const second = openStore(path)
  assert.deepEqual(bodyFileNames(path), [String(doneId), String(liveId), '0012', 'notes.txt'])
  assert.deepEqual(query(path, 'SELECT key FROM entries ORDER BY id'), [{ key: 'done' }, { key: 'live' }])
  live.write(patternBody(1500, 4))
  live.commit()
  assert.deepEqual(
    await readBody(entryAt(second.get('live'))),
    Buffer.concat([patternBody(2000, 2), patternBody(1500, 4)]),
  )
  assert.deepEqual(await readBody(entryAt(second.get('done'))), patternBody(3000, 1))
  assert.equal(readFileSync(bodyFileOf(path, 'notes.txt'), 'utf8'), 'not a body')
  // A writer killed while the store is open: the sweep removes its row and file.
  const killedLater = insertKilled(path)
  assert.equal(second.sweep(), 1)
  assert.equal(existsSync(bodyFileOf(path, killedLater)), false)
  assert.deepEqual(bodyFileNames(path), [String(doneId), String(liveId), '0012', 'notes.txt'])
  first.close()
  second.close()
})

test('an open that finds the write lock held leaves the orphan files to its first sweep', async () => {
  const path = newPath()
  const first = openStore(path)
  await storeBody(first, 'done', KEPT, patternBody(3000, 1))
  const doneId = idOf(first, 'done')
  first.close()
  writeFileSync(bodyFileOf(path, 999_999), 'no row')
  const lockHolder = new Database(path)
  lockHolder.exec('BEGIN IMMEDIATE')
  const store = openStore(path, { sweepIntervalMs: 0 })
  assert.deepEqual(bodyFileNames(path), [String(doneId), '999999'], 'the open did not look')
  assert.equal(store.sweep(), 0, 'nor can a sweep while the lock is held')
  assert.deepEqual(bodyFileNames(path), [String(doneId), '999999'])
  lockHolder.exec('COMMIT')
  lockHolder.close()
  assert.equal(store.sweep(), 0)
  assert.deepEqual(bodyFileNames(path), [String(doneId)])
  assert.deepEqual(await readBody(entryAt(store.get('done'))), patternBody(3000, 1))
  store.close()
})

test('closing a store drops its writes in progress: their files and rows go, later calls store nothing', () => {
  const path = newPath()
  const store = openStore(path)
  const writer = store.put('w', KEPT)
  const committer = store.put('c', KEPT)
  assert.ok(writer && committer)
  writer.write(patternBody(2000, 1))
  committer.write(patternBody(2000, 2))
  committer.write(patternBody(100, 3))
  assert.equal(bodyFileNames(path).length, 2)
  store.close()
  assert.deepEqual(bodyFileNames(path), [])
  assert.deepEqual(query(path, 'SELECT id FROM entries'), [])
  writer.write(patternBody(1024, 4))
  writer.abort()
  committer.commit()
  committer.abort()
  assert.deepEqual(bodyFileNames(path), [])
  const reopened = openStore(path)
  assert.deepEqual(reopened.get('c'), [])
  reopened.close()
})

test('files deleted while a store is open, then made anew: the old store never touches the new body files', async () => {
  const path = newPath()
  const options = { path, chunkBytes: 1024, sweepIntervalMs: 0 }
  const old = new SqliteStore(options)
  await storeBody(old, 'old', KEPT, patternBody(5000, 1))
  for (const suffix of ['', '-wal', '-shm', '-bodies'])
    rmSync(path + suffix, { recursive: true, force: true })
  const made = new SqliteStore(options)
  try {
    await storeBody(made, 'new', KEPT, patternBody(5000, 2))
    assert.equal(idOf(made, 'new'), idOf(old, 'old'), 'both number their entries from 1')
    await assert.rejects(
      storeBody(old, 'other', KEPT, patternBody(5000, 3)),
      /removed or replaced while open/,
    )
    await assert.rejects(readBody(entryAt(old.get('old'))), /removed or replaced while open/)
    old.delete('old')
    assert.deepEqual(await readBody(entryAt(made.get('new'))), patternBody(5000, 2))
  } finally {
    old.close()
    made.close()
  }
})
