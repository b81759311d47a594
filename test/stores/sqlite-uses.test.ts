/** SqliteStore's uses (eviction order), written together: when, by whom, and never going back. */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { sampleMeta, storeBody } from './helpers.js'

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

test('a use written late never makes an entry look older than a use written since', async () => {
  const path = newPath()
  await twoOldEntries(path)
  const raw = new Database(path)
  const lastUsed = (key: string) =>
    (raw.prepare('SELECT last_used_ms AS ms FROM entries WHERE key = ?').get(key) as { ms: number }).ms
  const store = new SqliteStore({ path, maxEntries: 2, hotBytes: 0, sweepIntervalMs: 0 })
  // the write lock held: this use waits
  raw.exec('BEGIN IMMEDIATE')
  const realNow = Date.now
  const usedMs = realNow()
  Date.now = () => usedMs
  store.get('A')
  raw.exec('COMMIT')
  // meanwhile a later use of A was written by another connection
  raw.prepare('UPDATE entries SET last_used_ms = ? WHERE key = ?').run(usedMs + MINUTE_MS, 'A')
  Date.now = realNow
  store.close()
  assert.equal(lastUsed('A'), usedMs + MINUTE_MS)
  raw.close()
})
