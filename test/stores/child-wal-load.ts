/**
 * A process that uses one SqliteStore file for `ms` milliseconds, then exits. `reader`: turns of 20
 * lookups and 0.5 ms of other work; `writer`: one queued commit of a 2 000-byte body a turn.
 * Usage: child-wal-load.ts PATH reader|writer MS
 */
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { patternBody, sampleMeta } from './helpers.js'

const [path, role, ms] = process.argv.slice(2)
const store = new SqliteStore({ path: path as string, sweepIntervalMs: 0, hotBytes: 0 })
const endMs = Date.now() + Number(ms)
const KEYS = 500

function turn(i: number): void {
  if (Date.now() > endMs) {
    store.close()
    return
  }
  if (role === 'reader') {
    for (let k = 0; k < 20; k++) store.get(`k${(i * 7 + k) % KEYS}`)
    const workStartedMs = performance.now()
    while (performance.now() - workStartedMs < 0.5) {}
  } else {
    const writer = store.put(`k${i % KEYS}`, sampleMeta())
    writer?.write(patternBody(2000, i))
    void writer?.commitSoon?.()
  }
  setImmediate(() => turn(i + 1))
}
turn(0)
