import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import Database from 'better-sqlite3'
import { BUSY_TIMEOUT_MS } from '../../lib/stores/sqlite-schema.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { patternBody, sampleMeta } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-lock-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** How long one synchronous write of a body of `sizeBytes` under `key` takes, and whether it threw. */
function timedWrite(store: SqliteStore, key: string, sizeBytes: number): { ms: number; failed: boolean } {
  const startedMs = performance.now()
  try {
    const writer = store.put(key, sampleMeta())
    assert.ok(writer)
    writer.write(patternBody(sizeBytes, 1))
    writer.commit()
    return { ms: performance.now() - startedMs, failed: false }
  } catch {
    return { ms: performance.now() - startedMs, failed: true }
  }
}

test('a write lock held for long costs one busy timeout, not one per write; waiting resumes once a write succeeds', () => {
  const path = join(dir, 'locked.db')
  const store = new SqliteStore({ path, sweepIntervalMs: 0, chunkBytes: 1024 })
  const otherProcess = new Database(path)
  try {
    otherProcess.prepare('BEGIN IMMEDIATE').run()
    const first = timedWrite(store, 'a', 100)
    assert.ok(
      first.failed && first.ms >= BUSY_TIMEOUT_MS * 0.9,
      `the first write waited ${Math.round(first.ms)} ms`,
    )
    // a commit, and a body-file write that begins its row
    for (const [key, sizeBytes] of [
      ['b', 100],
      ['c', 10_000],
    ] as const) {
      const next = timedWrite(store, key, sizeBytes)
      assert.ok(next.failed && next.ms < 500, `${key} failed in ${Math.round(next.ms)} ms, without waiting`)
    }
    otherProcess.prepare('ROLLBACK').run()
    assert.equal(timedWrite(store, 'd', 100).failed, false)
    otherProcess.prepare('BEGIN IMMEDIATE').run()
    const again = timedWrite(store, 'e', 100)
    assert.ok(
      again.failed && again.ms >= BUSY_TIMEOUT_MS * 0.9,
      `after a success, waited ${Math.round(again.ms)} ms`,
    )
    otherProcess.prepare('ROLLBACK').run()
    assert.deepEqual(
      ['a', 'b', 'c', 'd', 'e'].map((key) => store.get(key).length),
      [0, 0, 0, 1, 0],
    )
  } finally {
    otherProcess.close()
    store.close()
  }
})

test('a file opened while another connection holds the write lock opens at once, and stores once it is free', () => {
  const path = join(dir, 'locked-at-open.db')
  new SqliteStore({ path, sweepIntervalMs: 0 }).close()
  const otherProcess = new Database(path)
  otherProcess.prepare('BEGIN IMMEDIATE').run()
  const startedMs = performance.now()
  const store = new SqliteStore({ path, sweepIntervalMs: 0 })
  const openMs = performance.now() - startedMs
  otherProcess.prepare('ROLLBACK').run()
  otherProcess.close()
  try {
    assert.equal(store.failure, undefined)
    assert.ok(openMs < BUSY_TIMEOUT_MS / 5, `opening took ${Math.round(openMs)} ms`)
    assert.equal(timedWrite(store, 'k', 100).failed, false)
    assert.equal(store.get('k').length, 1)
  } finally {
    store.close()
  }
})
