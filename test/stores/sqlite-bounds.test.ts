import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import { KEY_READ_SQL } from '../../lib/stores/sqlite-key-reads.js'
import { STATEMENT_SQL } from '../../lib/stores/sqlite-statements.js'
import { SqliteStore, SWEEP_MAX_ROWS } from '../../lib/stores/sqlite-store.js'
import { USE_BITS_SQL } from '../../lib/stores/sqlite-use-bits.js'
import { USE_WRITE_DELAY_MS } from '../../lib/stores/sqlite-uses.js'
import { entryAt, patternBody, readBody, sampleMeta, storeBody, usedBit } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-bounds-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const newPath = () => join(dir, `bounds-${files++}.db`)
const NOW_MS = 1_800_000_000_000
const VALIDATED = { headers: { etag: '"v"' }, deleteAtMs: Number.MAX_SAFE_INTEGER }

/**
 * The query plan of every statement. Each write touches rows through the primary key or an index;
 * `selectLeastRecent` walks the LRU index from a place in it and stops at the first row (LIMIT 1);
 * `selectIncomplete` walks an index of unfinished rows only. The two full (covering-index) scans run
 * once, when a store opens. The key filter's reads go by id or along the key index alone, a step at a
 * time (LIMIT).
 */
const EXPECTED_PLANS: Record<keyof typeof STATEMENT_SQL, string> = {
  insertEntry: '',
  markWritten: 'SEARCH entries USING INTEGER PRIMARY KEY (rowid=?)',
  insertChunk: '',
  markComplete: 'SEARCH entries USING INTEGER PRIMARY KEY (rowid=?)',
  selectVariants:
    'SEARCH entries USING INDEX entries_key (key=? AND complete=?); USE TEMP B-TREE FOR ORDER BY',
  selectChunk: 'SEARCH chunks USING INDEX sqlite_autoindex_chunks_1 (entry_id=? AND seq=?)',
  selectInvalidatedMs: 'SEARCH invalidated USING PRIMARY KEY (key=?)',
  markInvalidated: '',
  forgetInvalidated: 'SEARCH invalidated USING COVERING INDEX invalidated_at (at_ms<?)',
  selectStoredVariants: 'SEARCH entries USING INDEX entries_key (key=? AND complete=?)',
  markRecent: 'SEARCH entries USING INTEGER PRIMARY KEY (rowid=?)',
  selectSameVariant: 'SEARCH entries USING INDEX entries_key (key=? AND complete=?)',
  selectKeyRows: 'SEARCH entries USING INDEX entries_key (key=?)',
  selectComplete: 'SEARCH entries USING INTEGER PRIMARY KEY (rowid=?)',
  updateMeta: 'SEARCH entries USING INTEGER PRIMARY KEY (rowid=?)',
  selectLeastRecent: 'SEARCH entries USING COVERING INDEX entries_lru (last_used_ms>?)',
  selectExpired: 'SEARCH entries USING COVERING INDEX entries_expiry (delete_at_ms>? AND delete_at_ms<?)',
  selectIncomplete: 'SCAN entries USING INDEX entries_incomplete',
  selectRow: 'SEARCH entries USING INTEGER PRIMARY KEY (rowid=?)',
  deleteChunks: 'SEARCH chunks USING INDEX sqlite_autoindex_chunks_1 (entry_id=?)',
  deleteEntry: 'SEARCH entries USING INTEGER PRIMARY KEY (rowid=?)',
  selectTotals: 'SEARCH totals USING INTEGER PRIMARY KEY (rowid=?)',
  addTotals: 'SEARCH totals USING INTEGER PRIMARY KEY (rowid=?)',
  orphanChunks:
    'SEARCH chunks USING COVERING INDEX sqlite_autoindex_chunks_1 (entry_id=?); LIST SUBQUERY 2; ' +
    'SCAN chunks USING COVERING INDEX sqlite_autoindex_chunks_1; USING ROWID SEARCH ON TABLE entries FOR IN-OPERATOR',
  recountTotals:
    'SEARCH totals USING INTEGER PRIMARY KEY (rowid=?); SCALAR SUBQUERY 1; SCAN entries USING COVERING INDEX ' +
    'entries_expiry; SCALAR SUBQUERY 2; SCAN entries USING COVERING INDEX entries_expiry',
}

/** The sweep's `dropUnused` reads every block, and for each one index search of the ids it covers. */
const EXPECTED_USE_BITS_PLANS: Record<keyof typeof USE_BITS_SQL, string> = {
  select: 'SEARCH used_bits USING INTEGER PRIMARY KEY (rowid=?)',
  upsert: '',
  dropUnused:
    'SCAN used_bits; CORRELATED SCALAR SUBQUERY 1; SEARCH entries USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)',
}

/** Dummy parameters for a statement: 1 for every `?` and every `@name`. */
function dummyParams(sql: string): unknown[] {
  const names = [...sql.matchAll(/@(\w+)/g)].map((match) => [match[1], 1])
  if (names.length > 0) return [Object.fromEntries(names)]
  return (sql.match(/\?/g) ?? []).map(() => 1)
}

const EXPECTED_KEY_READ_PLANS: Record<keyof typeof KEY_READ_SQL, string> = {
  rowsAfterId: 'SEARCH entries USING INTEGER PRIMARY KEY (rowid>?)',
  maxId: 'SEARCH entries',
  firstKeys: 'SCAN entries USING COVERING INDEX entries_key',
  keysAfterKey: 'SEARCH entries USING COVERING INDEX entries_key (key>?)',
}

/** The query plan of each statement of `sqlByName`, on a new store file. */
function plansOf(sqlByName: Record<string, string>): Record<string, string> {
  const path = newPath()
  new SqliteStore({ path }).close()
  const db = new Database(path, { readonly: true })
  const plans = Object.fromEntries(
    Object.entries(sqlByName).map(([name, sql]) => {
      const rows = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...dummyParams(sql)) as { detail: string }[]
      return [name, rows.map((row) => row.detail).join('; ')]
    }),
  )
  db.close()
  return plans
}

test('no statement scans a table, so eviction costs O(log n) per entry evicted', () => {
  assert.deepEqual(plansOf(STATEMENT_SQL), EXPECTED_PLANS)
  assert.deepEqual(plansOf(KEY_READ_SQL), EXPECTED_KEY_READ_PLANS)
  assert.deepEqual(plansOf(USE_BITS_SQL), EXPECTED_USE_BITS_PLANS)
})

test('sweep removes expired entries soonest first, at most SWEEP_MAX_ROWS a run, keeps the rest', async () => {
  const store = new SqliteStore({ path: newPath(), sweepIntervalMs: 0 })
  for (let i = 0; i < 250; i++) {
    await storeBody(store, `expired-${i}`, sampleMeta({ deleteAtMs: NOW_MS - 1000 + i }), patternBody(10, i))
  }
  await storeBody(store, 'validated', sampleMeta(VALIDATED), patternBody(10, 1))
  await storeBody(store, 'unknown', sampleMeta({ deleteAtMs: 0 }), patternBody(10, 2))
  await storeBody(store, 'later', sampleMeta({ deleteAtMs: NOW_MS + 1 }), patternBody(10, 3))
  await storeBody(store, 'now', sampleMeta({ deleteAtMs: NOW_MS }), patternBody(10, 4))
  assert.equal(SWEEP_MAX_ROWS, 200)
  assert.equal(store.sweep(NOW_MS), 200)
  assert.deepEqual(store.get('expired-199'), [])
  assert.equal(store.get('expired-200').length, 1, 'the 50 that expire last are left for the next run')
  assert.equal(store.sweep(NOW_MS), 51)
  assert.equal(store.sweep(NOW_MS), 0)
  const kept = ['validated', 'unknown', 'later'].map((key) => store.get(key).length)
  assert.deepEqual(kept, [1, 1, 1])
  assert.deepEqual(store.get('now'), [])
  assert.equal(store.stats().entryCount, 3)
  store.close()
})

test('a stale entry with validators is never swept; it goes only when eviction needs its space', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: NOW_MS })
  const metaBytes = Buffer.byteLength(JSON.stringify(sampleMeta(VALIDATED)))
  const store = new SqliteStore({ path: newPath(), maxBytes: 3 * (1000 + metaBytes), sweepIntervalMs: 0 })
  await storeBody(
    store,
    'stale-validated',
    sampleMeta({ ...VALIDATED, responseTimeMs: 0 }),
    patternBody(1000, 1),
  )
  t.mock.timers.tick(1000)
  await storeBody(store, 'b', sampleMeta(VALIDATED), patternBody(1000, 2))
  t.mock.timers.tick(1000)
  await storeBody(store, 'c', sampleMeta(VALIDATED), patternBody(1000, 3))
  assert.equal(store.sweep(Number.MAX_SAFE_INTEGER - 1), 0)
  assert.equal(store.get('stale-validated').length, 1)
  t.mock.timers.tick(1000)
  await storeBody(store, 'd', sampleMeta(VALIDATED), patternBody(1000, 4))
  assert.deepEqual(store.get('stale-validated'), [])
  assert.deepEqual(store.stats(), { totalBytes: 3 * (1000 + metaBytes), entryCount: 3 })
  store.close()
})

test('the sweep runs on its own every sweepIntervalMs, not at all with 0, and stops on close', async () => {
  const expired = sampleMeta({ deleteAtMs: 1 })
  const timed = new SqliteStore({ path: newPath(), sweepIntervalMs: 20 })
  const untimed = new SqliteStore({ path: newPath(), sweepIntervalMs: 0 })
  for (const store of [timed, untimed]) await storeBody(store, 'k', expired, patternBody(10, 1))
  await sleep(120)
  assert.deepEqual(timed.get('k'), [])
  assert.equal(untimed.get('k').length, 1)
  timed.close()
  untimed.close()
  await sleep(60) // a timer left running would now throw 'closed' from the sweep and fail this file
})

test('a use mark or a sweep never waits for another connection holding the write lock', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: NOW_MS })
  const path = newPath()
  const store = new SqliteStore({ path, sweepIntervalMs: 0 })
  await storeBody(store, 'k', sampleMeta(VALIDATED), patternBody(3000, 1), 3000)
  const lockHolder = new Database(path)
  const id = entryAt(store.get('k')).id as number
  t.mock.timers.tick(60_000)
  lockHolder.exec('BEGIN IMMEDIATE')
  const startedMs = performance.now()
  const entries = store.get('k')
  assert.equal(store.sweep(Number.MAX_SAFE_INTEGER), 0)
  const waitedMs = performance.now() - startedMs
  assert.ok(waitedMs < 1000, `waited ${waitedMs} ms`)
  assert.deepEqual(await readBody(entryAt(entries)), patternBody(3000, 1))
  lockHolder.exec('COMMIT')
  assert.equal(usedBit(lockHolder, id), false, 'the use was not recorded')
  await sleep(2 * USE_WRITE_DELAY_MS + 50)
  assert.equal(usedBit(lockHolder, id), true, 'the use waited, and is written once the lock is free')
  lockHolder.close()
  store.close()
})
