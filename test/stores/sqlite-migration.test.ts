import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import Database from 'better-sqlite3'
import { STALE_WRITE_MS } from '../../lib/stores/sqlite-liveness.js'
import { SCHEMA_VERSION } from '../../lib/stores/sqlite-schema.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { bodyFileNames, entryAt, metaOf, patternBody, readBody, sampleMeta, storeBody } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-migration-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** The layout of schema version 1 exactly as undici-cache 0.1.0 created it (commit 81ab4b2). */
const VERSION_1_DDL = `
CREATE TABLE entries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL,
  vary_key TEXT NOT NULL,
  complete INTEGER NOT NULL DEFAULT 0,
  meta TEXT NOT NULL,
  body BLOB,
  body_bytes INTEGER NOT NULL DEFAULT 0,
  size_bytes INTEGER NOT NULL DEFAULT 0,
  written_ms INTEGER NOT NULL,
  stored_ms INTEGER NOT NULL DEFAULT 0,
  last_used_ms INTEGER NOT NULL DEFAULT 0,
  delete_at_ms INTEGER NOT NULL
);
CREATE INDEX entries_key ON entries (key, complete);
CREATE INDEX entries_lru ON entries (last_used_ms) WHERE complete = 1;
CREATE TABLE chunks (
  entry_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (entry_id, seq)
);
CREATE TABLE totals (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  bytes INTEGER NOT NULL,
  entries INTEGER NOT NULL
);
INSERT INTO totals (id, bytes, entries) VALUES (1, 0, 0);
PRAGMA user_version = 1;
`

const NOW_MS = Date.now()
const inlineMeta = sampleMeta({ varyKey: 'gzip', deleteAtMs: NOW_MS + 60_000 })
const chunkedMeta = sampleMeta({ headers: { etag: '"v1"' }, deleteAtMs: Number.MAX_SAFE_INTEGER })
const json = (meta: object) => JSON.stringify(meta)

/** A version-1 file as the 0.1.0 store left it: an inline and a chunked entry, two unfinished writes. */
function writeVersion1File(path: string): void {
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.exec(VERSION_1_DDL)
  const insert = db.prepare(
    `INSERT INTO entries (key, vary_key, complete, meta, body, body_bytes, size_bytes, written_ms, stored_ms,
       last_used_ms, delete_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  )
  const inlineBytes = 100 + Buffer.byteLength(json(inlineMeta))
  const chunkedBytes = 2500 + Buffer.byteLength(json(chunkedMeta))
  const row = (key: string, meta: object, body: Buffer | null, bodyBytes: number, sizeBytes: number) => [
    key,
    (meta as { varyKey: string }).varyKey,
    1,
    json(meta),
    body,
    bodyBytes,
    sizeBytes,
    NOW_MS,
    NOW_MS,
    NOW_MS,
    (meta as { deleteAtMs: number }).deleteAtMs,
  ]
  insert.run(...row('inline', inlineMeta, patternBody(100, 1), 100, inlineBytes))
  insert.run(...row('chunked', chunkedMeta, null, 2500, chunkedBytes))
  const unfinished = [NOW_MS - STALE_WRITE_MS - 1, NOW_MS - 1000]
  for (const writtenMs of unfinished) {
    insert.run('unfinished', '', 0, '{}', null, 0, 0, writtenMs, 0, writtenMs, 0)
  }
  const chunk = db.prepare('INSERT INTO chunks (entry_id, seq, data) VALUES (?, ?, ?)')
  chunk.run(2, 0, patternBody(2500, 2).subarray(0, 1024))
  chunk.run(2, 1, patternBody(2500, 2).subarray(1024, 2048))
  chunk.run(2, 2, patternBody(2500, 2).subarray(2048))
  chunk.run(3, 0, patternBody(10, 3))
  chunk.run(4, 0, patternBody(10, 4))
  db.prepare('UPDATE totals SET bytes = ?, entries = 2').run(inlineBytes + chunkedBytes)
  db.close()
}

/** Name and SQL of every table and index, to compare two layouts. */
function layout(path: string): { name: string; sql: string | null }[] {
  const db = new Database(path, { readonly: true })
  const rows = db.prepare('SELECT name, sql FROM sqlite_schema ORDER BY name').all()
  db.close()
  return rows as { name: string; sql: string | null }[]
}

test('a version-1 file migrates to version 5 and its entries read back', async () => {
  const path = join(dir, 'v1.db')
  writeVersion1File(path)
  const store = new SqliteStore({ path, chunkBytes: 1024 })
  assert.equal(store.failure, undefined)
  const raw = new Database(path)
  assert.equal(raw.pragma('user_version', { simple: true }), 5)
  assert.equal(SCHEMA_VERSION, 5)

  const inline = entryAt(store.get('inline'))
  assert.deepEqual(metaOf(inline), inlineMeta)
  assert.deepEqual(inline.body, patternBody(100, 1))
  const chunked = entryAt(store.get('chunked'))
  assert.deepEqual(metaOf(chunked), chunkedMeta)
  assert.equal(chunked.sizeBytes, 2500)
  assert.deepEqual(await readBody(chunked), patternBody(2500, 2))
  const sizes = 2600 + Buffer.byteLength(json(inlineMeta)) + Buffer.byteLength(json(chunkedMeta))
  assert.deepEqual(store.stats(), { totalBytes: sizes, entryCount: 2 })

  // The stale unfinished write went; the recent one has no known writer (pid 0), so it waits.
  const rows = raw.prepare(
    'SELECT id, complete, writer_host, writer_pid, writer_token, body_file FROM entries ORDER BY id',
  )
  assert.deepEqual(rows.all(), [
    { id: 1, complete: 1, writer_host: '', writer_pid: 0, writer_token: '', body_file: 0 },
    { id: 2, complete: 1, writer_host: '', writer_pid: 0, writer_token: '', body_file: 0 },
    { id: 4, complete: 0, writer_host: '', writer_pid: 0, writer_token: '', body_file: 0 },
  ])
  assert.deepEqual(raw.prepare('SELECT entry_id, seq FROM chunks ORDER BY entry_id, seq').all(), [
    { entry_id: 2, seq: 0 },
    { entry_id: 2, seq: 1 },
    { entry_id: 2, seq: 2 },
    { entry_id: 4, seq: 0 },
  ])
  raw.close()

  await storeBody(store, 'after', sampleMeta({ deleteAtMs: 0 }), patternBody(3000, 5), 500)
  const after = entryAt(store.get('after'))
  assert.deepEqual(await readBody(after), patternBody(3000, 5))
  assert.deepEqual(bodyFileNames(path), [String(after.id)], 'a new long body goes to a file')
  assert.equal(store.sweep(NOW_MS + 60_000), 1, 'the inline entry expired, the chunked one has a validator')
  assert.deepEqual(store.get('inline'), [])
  store.close()

  const freshPath = join(dir, 'fresh.db')
  new SqliteStore({ path: freshPath }).close()
  assert.deepEqual(layout(path), layout(freshPath))
})

test('a migrated file opens again without migrating twice', async () => {
  const path = join(dir, 'v1-twice.db')
  writeVersion1File(path)
  new SqliteStore({ path }).close()
  const again = new SqliteStore({ path })
  assert.equal(again.failure, undefined)
  assert.deepEqual(await readBody(entryAt(again.get('chunked'))), patternBody(2500, 2))
  again.close()
})
