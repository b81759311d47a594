/** SqliteStore's uses (eviction order), written together: when, by whom, and what eviction makes of them. */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { MAX_SECOND_CHANCES } from '../../lib/stores/sqlite-row-writes.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { SqliteTables } from '../../lib/stores/sqlite-tables.js'
import { USE_BLOCK_IDS } from '../../lib/stores/sqlite-use-bits.js'
import { USE_WRITE_DELAY_MS } from '../../lib/stores/sqlite-uses.js'
import {
  damageRootPage,
  fdsOnFile,
  linuxOnly,
  refuseInserts,
  sampleMeta,
  storeBody,
  usedBit,
} from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-uses-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const newPath = () => join(dir, `uses-${files++}.db`)
const MINUTE_MS = 60_000

/** A fresh entry's metadata, stored now (by Date.now(), which a test may set back). */
function freshMeta() {
  const nowMs = Date.now()
  return sampleMeta({ requestTimeMs: nowMs, responseTimeMs: nowMs, deleteAtMs: nowMs + 3_600_000 })
}

/** Stores A then B, both last used two minutes ago (A first), in a store that keeps two entries. */
async function twoOldEntries(path: string): Promise<void> {
  const realNow = Date.now
  Date.now = () => realNow() - 2 * MINUTE_MS
  try {
    const store = new SqliteStore({ path, maxEntries: 2, hotBytes: 0, sweepIntervalMs: 0 })
    await storeBody(store, 'A', freshMeta(), Buffer.from('a'))
    await storeBody(store, 'B', freshMeta(), Buffer.from('b'))
    store.close()
  } finally {
    Date.now = realNow
  }
}

/** twoOldEntries, then A read (its use recorded) by a store closed since. */
async function twoOldEntriesAUsed(path: string): Promise<void> {
  await twoOldEntries(path)
  const reader = new SqliteStore({ path, maxEntries: 2, hotBytes: 0, sweepIntervalMs: 0 })
  assert.equal(reader.get('A').length, 1)
  reader.close()
}

/** Stores C in a store keeping two entries: which of A and B is left (the other was least recently used). */
async function keptAfterOneMore(path: string): Promise<string[]> {
  const store = new SqliteStore({ path, maxEntries: 2, hotBytes: 0, sweepIntervalMs: 0 })
  await storeBody(store, 'C', freshMeta(), Buffer.from('c'))
  const kept = ['A', 'B'].filter((key) => store.get(key).length > 0)
  store.close()
  return kept
}

for (const how of ['end', 'exit'] as const)
  test(`a process that ${how === 'end' ? 'runs out of work' : 'calls process.exit()'} right after a hit writes its use first`, async () => {
    const path = newPath()
    await twoOldEntries(path)
    const script = fileURLToPath(new URL('./child-hit.ts', import.meta.url))
    const child = spawn(process.execPath, ['--import', 'tsx', script, path, how, 'A'], {
      stdio: ['ignore', 'inherit', 'inherit'],
    })
    assert.equal((await once(child, 'close'))[0], 0)
    assert.deepEqual(await keptAfterOneMore(path), ['A'])
  })

test("another store of this process on the file sees this one's waiting uses before it evicts", async () => {
  const path = newPath()
  await twoOldEntries(path)
  const reader = new SqliteStore({ path, maxEntries: 2, hotBytes: 0, sweepIntervalMs: 0 })
  assert.equal(reader.get('A').length, 1)
  assert.deepEqual(await keptAfterOneMore(path), ['A'])
  reader.close()
})

test('an entry used since its recorded use is kept once (second chance), then counts from that eviction', async () => {
  const path = newPath()
  await twoOldEntriesAUsed(path)
  assert.deepEqual(await keptAfterOneMore(path), ['A'], 'B, not used, went for C')
  const store = new SqliteStore({ path, maxEntries: 2, hotBytes: 0, sweepIntervalMs: 0 })
  await storeBody(store, 'D', freshMeta(), Buffer.from('d'))
  assert.deepEqual(
    ['A', 'C', 'D'].filter((key) => store.get(key).length > 0),
    ['C', 'D'],
    'A was not used since C came: its second chance was taken',
  )
  store.close()
})

for (const times of ['distinct', 'equal'] as const)
  test(`one eviction gives at most ${MAX_SECOND_CHANCES} second chances, then takes the least recent (${times} times)`, async () => {
    const path = newPath()
    const count = MAX_SECOND_CHANCES + 2
    const keys = Array.from({ length: count }, (_, index) => `k${index}`)
    const realNow = Date.now
    const store = new SqliteStore({ path, maxEntries: count, hotBytes: 0, sweepIntervalMs: 0 })
    Date.now = () => realNow() - 2 * MINUTE_MS
    try {
      for (const key of keys) await storeBody(store, key, freshMeta(), Buffer.from(key))
    } finally {
      Date.now = realNow
    }
    const raw = new Database(path)
    if (times === 'equal') raw.prepare('UPDATE entries SET last_used_ms = ?').run(realNow() - 2 * MINUTE_MS)
    // every entry used, each recorded: a minute past its commit
    for (const key of keys) assert.equal(store.get(key).length, 1)
    await storeBody(store, 'new', freshMeta(), Buffer.from('new'))
    const gone = keys.filter((key) => store.get(key).length === 0)
    assert.deepEqual(gone, [`k${MAX_SECOND_CHANCES}`], 'the oldest ones were moved back, the next went')
    const newestMs = raw.prepare('SELECT MAX(last_used_ms) FROM entries').pluck().get() as number
    assert.ok(newestMs <= Date.now(), 'no second chance is ahead of the clock')
    raw.close()
    store.close()
  })

test('the sweep drops the use bits of blocks whose entries are all gone, and keeps the others', async () => {
  const path = newPath()
  await twoOldEntries(path)
  const store = new SqliteStore({ path, hotBytes: 0, sweepIntervalMs: 0 })
  assert.equal(store.get('A').length, 1)
  assert.equal(store.get('B').length, 1)
  store.close()
  const raw = new Database(path)
  const blocks = raw.prepare('SELECT block FROM used_bits ORDER BY block').pluck()
  // B's id moved to another block, as if 10⁵ entries had come and gone between A and B
  const movedId = 12 * USE_BLOCK_IDS + 5
  raw.prepare('UPDATE entries SET id = ? WHERE key = ?').run(movedId, 'B')
  raw.prepare('INSERT INTO used_bits (block, bits) VALUES (?, ?)').run(12, Buffer.alloc(USE_BLOCK_IDS / 8))
  assert.deepEqual(blocks.all(), [0, 12])
  const sweeper = new SqliteStore({ path, hotBytes: 0, sweepIntervalMs: 0 })
  sweeper.delete('A')
  assert.equal(sweeper.sweep(), 0)
  assert.deepEqual(blocks.all(), [12], "A's block went with A; B's is kept")
  sweeper.close()
  raw.close()
})

test('a store records a use of an entry at most once a minute, though a use leaves its time as it was', async () => {
  const path = newPath()
  await twoOldEntries(path)
  const store = new SqliteStore({ path, hotBytes: 0, sweepIntervalMs: 0 })
  const id = store.get('A')[0]?.id as number
  await sleep(USE_WRITE_DELAY_MS + 50)
  const raw = new Database(path)
  assert.equal(usedBit(raw, id), true)
  // another process's eviction took the second chance (its time left as it was, for this test)
  raw.prepare('UPDATE used_bits SET bits = zeroblob(length(bits))').run()
  assert.equal(store.get('A').length, 1)
  await sleep(USE_WRITE_DELAY_MS + 50)
  assert.equal(usedBit(raw, id), false, 'the hit within the minute of the last use recorded nothing')
  raw.close()
  store.close()
})

test('a second chance holds when the clock went back: the entry keeps its time and is passed over', async () => {
  const path = newPath()
  await twoOldEntriesAUsed(path)
  const realNow = Date.now
  Date.now = () => realNow() - 10 * MINUTE_MS
  try {
    assert.deepEqual(await keptAfterOneMore(path), ['A'], 'B, not used, went for C')
  } finally {
    Date.now = realNow
  }
})

test(
  'a version-5 file without its used_bits table makes a failed store and leaves no descriptor open',
  linuxOnly,
  () => {
    const path = newPath()
    new SqliteStore({ path }).close()
    const raw = new Database(path)
    raw.exec('DROP TABLE used_bits')
    raw.close()
    for (let open = 0; open < 3; open++) {
      const store = new SqliteStore({ path })
      assert.match(String(store.failure), /no such table: used_bits/)
      store.close()
    }
    assert.equal(fdsOnFile(path), 0)
  },
)

test('a hit records a use of an entry whose time is ahead of the clock, from the file and from the hot tier', async () => {
  const path = newPath()
  await twoOldEntries(path)
  const store = new SqliteStore({ path, sweepIntervalMs: 0 })
  const raw = new Database(path)
  const id = store.get('A')[0]?.id as number
  assert.equal(store.get('A').length, 1, 'read twice: in the hot tier now')
  await sleep(USE_WRITE_DELAY_MS + 50)
  assert.equal(usedBit(raw, id), true)
  raw.prepare('UPDATE used_bits SET bits = zeroblob(length(bits))').run()
  const realNow = Date.now
  Date.now = () => realNow() - 60 * MINUTE_MS
  try {
    assert.equal(store.get('A').length, 1)
  } finally {
    Date.now = realNow
  }
  await sleep(USE_WRITE_DELAY_MS + 50)
  assert.equal(usedBit(raw, id), true, 'the hot tier touched it: its last touch was ahead of the clock')
  // another machine, its clock an hour ahead, stored B; this one reads it from the file
  raw.prepare('UPDATE entries SET last_used_ms = ? WHERE key = ?').run(realNow() + 60 * MINUTE_MS, 'B')
  const cold = new SqliteStore({ path, hotBytes: 0, sweepIntervalMs: 0 })
  const idB = cold.get('B')[0]?.id as number
  await sleep(USE_WRITE_DELAY_MS + 50)
  assert.equal(usedBit(raw, idB), true)
  cold.close()
  raw.close()
  store.close()
})

test('uses wait for their own file: not a file made again at the path while a store had the old one open', async () => {
  const path = newPath()
  await twoOldEntries(path)
  const old = new SqliteStore({ path, hotBytes: 0, sweepIntervalMs: 0 })
  for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true })
  const fresh = new SqliteStore({ path, hotBytes: 0, sweepIntervalMs: 0 })
  await storeBody(fresh, 'X', freshMeta(), Buffer.from('x'))
  assert.equal(old.get('A')[0]?.id, 1)
  // this write takes the waiting uses of this process's stores on its file
  await storeBody(fresh, 'Y', freshMeta(), Buffer.from('y'))
  const raw = new Database(path)
  assert.equal(raw.prepare("SELECT id FROM entries WHERE key = 'X'").pluck().get(), 1)
  assert.equal(usedBit(raw, 1), false, "the old file's use of its entry 1 is not this file's")
  raw.close()
  fresh.close()
  old.close()
})

test('uses taken by a write transaction that fails wait again, and are written by the next', async () => {
  const path = newPath()
  await twoOldEntries(path)
  const raw = new Database(path)
  refuseInserts(raw, 'refused')
  const store = new SqliteStore({ path, hotBytes: 0, sweepIntervalMs: 0 })
  const id = store.get('A')[0]?.id as number
  await assert.rejects(storeBody(store, 'refused', freshMeta(), Buffer.from('r')), /refused by the test/)
  assert.equal(usedBit(raw, id), false, 'rolled back with the failed write')
  await sleep(USE_WRITE_DELAY_MS + 50)
  assert.equal(usedBit(raw, id), true)
  raw.close()
  store.close()
})

test('an eviction that passed over entries ahead of the clock still ends within the limits', async () => {
  const path = newPath()
  const store = new SqliteStore({ path, maxEntries: 3, hotBytes: 0, sweepIntervalMs: 0 })
  for (const key of ['A', 'B', 'C']) await storeBody(store, key, freshMeta(), Buffer.from(key))
  const realNow = Date.now
  Date.now = () => realNow() - 10 * MINUTE_MS
  try {
    // their times are ahead of the clock now: their uses are due, and their second chances keep them
    for (const key of ['A', 'B', 'C']) assert.equal(store.get(key).length, 1)
    await storeBody(store, 'D', freshMeta(), Buffer.from('d'))
  } finally {
    Date.now = realNow
  }
  assert.equal(store.stats().entryCount, 3)
  assert.equal(store.get('D').length, 1)
  store.close()
})

test("a store closed while another connection holds the lock hands its waiting uses to this process's other store", async () => {
  const path = newPath()
  await twoOldEntries(path)
  const writer = new SqliteStore({ path, maxEntries: 2, hotBytes: 0, sweepIntervalMs: 0 })
  const reader = new SqliteStore({ path, maxEntries: 2, hotBytes: 0, sweepIntervalMs: 0 })
  assert.equal(reader.get('A').length, 1)
  const lockHolder = new Database(path)
  lockHolder.exec('BEGIN IMMEDIATE')
  reader.close()
  lockHolder.exec('COMMIT')
  lockHolder.close()
  await storeBody(writer, 'C', freshMeta(), Buffer.from('c'))
  assert.deepEqual(
    ['A', 'B'].filter((key) => writer.get(key).length > 0),
    ['A'],
  )
  writer.close()
})

test('the hot tier records each variant of a key when its own use is due, not all at the earliest', async () => {
  const path = newPath()
  const realNow = Date.now
  const startMs = realNow()
  let nowMs = startMs - 2 * MINUTE_MS
  Date.now = () => nowMs
  const recorded: number[] = []
  const markUsed = SqliteTables.prototype.markUsed
  SqliteTables.prototype.markUsed = function (entryId: number) {
    recorded.push(entryId)
    markUsed.call(this, entryId)
  }
  try {
    const store = new SqliteStore({ path, sweepIntervalMs: 0 })
    await storeBody(store, 'k', sampleMeta({ ...freshMeta(), varyKey: 'one' }), Buffer.from('1'))
    nowMs = startMs - 58_000
    await storeBody(store, 'k', sampleMeta({ ...freshMeta(), varyKey: 'two' }), Buffer.from('2'))
    nowMs = startMs
    const [two, one] = store.get('k').map((entry) => entry.id as number)
    assert.deepEqual(recorded, [one], 'two was committed 58 s ago')
    assert.equal(store.get('k').length, 2, 'read twice: in the hot tier now')
    // more entries read than the store remembers uses of: the hot tier keeps its own times
    const others = Array.from({ length: 16_500 }, (_, index) => `other-${index}`)
    for (let at = 0; at < others.length; at += 500) {
      const batch = others.slice(at, at + 500)
      await Promise.all(batch.map((key) => storeBody(store, key, freshMeta(), Buffer.from('o'))))
    }
    for (const key of others) assert.equal(store.get(key).length, 1)
    assert.deepEqual(recorded, [one], 'the others were committed now')
    nowMs = startMs + 3_000
    assert.equal(store.get('k').length, 2)
    assert.deepEqual(recorded, [one, two], "two's minute is up; one's use is 3 s old")
    store.close()
  } finally {
    SqliteTables.prototype.markUsed = markUsed
    Date.now = realNow
  }
})

test('an entry given a second chance is not taken again by the same eviction before one never used', async () => {
  const path = newPath()
  const realNow = Date.now
  const nowMs = realNow()
  const store = new SqliteStore({ path, maxEntries: 2, hotBytes: 0, sweepIntervalMs: 0 })
  Date.now = () => nowMs - 5 * MINUTE_MS
  try {
    await storeBody(store, 'X', freshMeta(), Buffer.from('x'))
    Date.now = () => nowMs
    assert.equal(store.get('X').length, 1)
    // Y and Z in X's new millisecond, with ids after X's: the walk meets X again before Y
    await storeBody(store, 'Y', freshMeta(), Buffer.from('y'))
    await storeBody(store, 'Z', freshMeta(), Buffer.from('z'))
  } finally {
    Date.now = realNow
  }
  assert.deepEqual(
    ['X', 'Y', 'Z'].filter((key) => store.get(key).length > 0),
    ['X', 'Z'],
  )
  store.close()
})

test(
  'a file whose damage only the body-file check reads fails its store, and closing it leaves nothing open',
  linuxOnly,
  async () => {
    const path = newPath()
    const writer = new SqliteStore({ path, chunkBytes: 1024, hotBytes: 0, sweepIntervalMs: 0 })
    await storeBody(writer, 'A', freshMeta(), Buffer.alloc(5000, 1))
    writer.close()
    damageRootPage(path, 'entries')
    for (const onCorrupt of ['fail', 'recreate'] as const) {
      const store = new SqliteStore({ path, onCorrupt, sweepIntervalMs: 0 })
      if (onCorrupt === 'fail') assert.match(String(store.failure), /malformed|corrupt/i)
      store.close()
    }
    assert.equal(fdsOnFile(path), 0)
  },
)
