/** SqliteStore: uses a failed write transaction took wait again in the store that recorded them. */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { USE_WRITE_DELAY_MS } from '../../lib/stores/sqlite-uses.js'
import { refuseInserts, sampleMeta, usedBit } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-uses-restore-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** Each of two stores records this many uses: together past the 1 024 that are dropped, each alone not. */
const USES_EACH = 600

/** `count` entries stored two minutes ago (so that reading one records a use), and their ids. */
function oldEntries(path: string, count: number): void {
  const realNow = Date.now
  Date.now = () => realNow() - 120_000
  try {
    const store = new SqliteStore({ path, hotBytes: 0, sweepIntervalMs: 0 })
    for (let index = 0; index < count; index++) {
      const nowMs = Date.now()
      const meta = sampleMeta({ requestTimeMs: nowMs, responseTimeMs: nowMs, deleteAtMs: nowMs + 3_600_000 })
      const writer = store.put(`k${index}`, meta)
      assert.ok(writer)
      writer.write(Buffer.from(`body ${index}`))
      writer.commit()
    }
    store.close()
  } finally {
    Date.now = realNow
  }
}

test('a failed write puts the uses it took back into the store that recorded each, not all into its own', async () => {
  const path = join(dir, 'two-stores.db')
  oldEntries(path, 2 * USES_EACH)
  const raw = new Database(path)
  refuseInserts(raw, 'refused')
  const first = new SqliteStore({ path, hotBytes: 0, sweepIntervalMs: 0 })
  const second = new SqliteStore({ path, hotBytes: 0, sweepIntervalMs: 0 })
  const ids: number[] = []
  // within one turn: no use is written before the failed write takes them all
  for (let index = 0; index < 2 * USES_EACH; index++) {
    const [entry] = (index < USES_EACH ? first : second).get(`k${index}`)
    ids.push(entry?.id as number)
  }
  const writer = first.put('refused', sampleMeta())
  assert.ok(writer)
  writer.write(Buffer.from('r'))
  assert.throws(() => writer.commit(), /refused by the test/)
  assert.equal(ids.filter((id) => usedBit(raw, id)).length, 0, 'rolled back with the failed write')
  await sleep(USE_WRITE_DELAY_MS + 100)
  assert.equal(ids.filter((id) => usedBit(raw, id)).length, 2 * USES_EACH)
  raw.close()
  first.close()
  second.close()
})
