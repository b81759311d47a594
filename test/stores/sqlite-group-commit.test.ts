import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { storeErrorChannel } from '../../lib/diagnostics.js'
import {
  COMMIT_DELAY_MS,
  MAX_QUEUED_BYTES,
  MAX_QUEUED_COMMITS,
} from '../../lib/stores/sqlite-commit-queue.js'
import { BUSY_TIMEOUT_MS } from '../../lib/stores/sqlite-schema.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { entryAt, patternBody, readBody, sampleMeta } from './helpers.js'
import { mountTmpfs } from './sqlite-mounts.js'

const KIB = 1024
const dir = mkdtempSync(join(tmpdir(), 'undici-cache-group-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** Opens n writers with bodies of `sizeBytes` written, ready to commit. */
function writers(store: SqliteStore, n: number, sizeBytes = 100) {
  return Array.from({ length: n }, (_, i) => {
    const writer = store.put(`k${i}`, sampleMeta())
    assert.ok(writer?.commitSoon)
    writer.write(patternBody(sizeBytes, i))
    return writer
  })
}

/** How many complete entries another process would see: a plain connection, outside this process's stores. */
function committedCount(path: string): number {
  const raw = new Database(path, { readonly: true })
  try {
    return (raw.prepare('SELECT COUNT(*) AS n FROM entries WHERE complete = 1').get() as { n: number }).n
  } finally {
    raw.close()
  }
}

test('queued commits resolve at once and reach the file together, one delay later', async () => {
  const path = join(dir, 'group.db')
  const store = new SqliteStore({ path, sweepIntervalMs: 0 })
  await Promise.all(writers(store, 20).map((writer) => writer.commitSoon?.()))
  assert.equal(committedCount(path), 0, 'another process does not see them yet')
  const seen = new Set<number>()
  const deadline = Date.now() + COMMIT_DELAY_MS + 1000
  while (committedCount(path) < 20 && Date.now() < deadline) {
    seen.add(committedCount(path))
    await sleep(1)
  }
  seen.add(committedCount(path))
  assert.deepEqual(
    [...seen].sort((a, b) => a - b),
    [0, 20],
    'all twenty in one transaction',
  )
  assert.deepEqual(await readBody(entryAt(store.get('k19'))), patternBody(100, 19))
  store.close()
})

test('this process reads its queued commits at once, from any of its stores on the file', async () => {
  const path = join(dir, 'own.db')
  const store = new SqliteStore({ path, sweepIntervalMs: 0 })
  const other = new SqliteStore({ path, sweepIntervalMs: 0 })
  await Promise.all(writers(store, 3).map((writer) => writer.commitSoon?.()))
  assert.deepEqual(await readBody(entryAt(other.get('k2'))), patternBody(100, 2))
  assert.equal(committedCount(path), 3, 'reading one queued key committed the queue')
  assert.deepEqual(await readBody(entryAt(store.get('k0'))), patternBody(100, 0))
  store.close()
  other.close()
})

test(`a queue of ${MAX_QUEUED_COMMITS} commits, or of ${MAX_QUEUED_BYTES / KIB / KIB} MiB of bodies, is committed at once`, async () => {
  const byCount = join(dir, 'count.db')
  const store = new SqliteStore({ path: byCount, sweepIntervalMs: 0 })
  const many = writers(store, MAX_QUEUED_COMMITS)
  for (const writer of many.slice(0, -1)) await writer.commitSoon?.()
  assert.equal(committedCount(byCount), 0)
  await many.at(-1)?.commitSoon?.()
  assert.equal(committedCount(byCount), MAX_QUEUED_COMMITS)
  store.close()

  const byBytes = join(dir, 'bytes.db')
  const bodyBytes = 200 * KIB
  const big = new SqliteStore({ path: byBytes, sweepIntervalMs: 0, chunkBytes: 256 * KIB })
  const filling = Math.ceil(MAX_QUEUED_BYTES / bodyBytes)
  const heavy = writers(big, filling, bodyBytes)
  for (const writer of heavy.slice(0, -1)) await writer.commitSoon?.()
  assert.equal(committedCount(byBytes), 0)
  await heavy.at(-1)?.commitSoon?.()
  assert.equal(committedCount(byBytes), filling)
  big.close()
})

/** Runs child-queued-commit.ts, which queues `count` commits and ends `how`. */
async function queueInChild(path: string, how: 'end' | 'exit', count: number): Promise<void> {
  const script = fileURLToPath(new URL('./child-queued-commit.ts', import.meta.url))
  const child = spawn(process.execPath, ['--import', 'tsx', script, path, how, String(count)], {
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const [exitCode] = await once(child, 'close')
  assert.equal(exitCode, 0)
}

for (const how of ['end', 'exit'] as const)
  test(`a process that ${how === 'end' ? 'runs out of work' : 'calls process.exit()'} commits its queue first`, async () => {
    const path = join(dir, `child-${how}.db`)
    await queueInChild(path, how, 5)
    assert.equal(committedCount(path), 5)
    const store = new SqliteStore({ path, sweepIntervalMs: 0 })
    assert.deepEqual(await readBody(entryAt(store.get('k4'))), patternBody(100, 4))
    store.close()
  })

test('a queue that cannot be committed (disk full) stores nothing, says so on the store-error channel, and the store goes on', async (t) => {
  const tmpfs = mountTmpfs(1024 * KIB)
  if ('skip' in tmpfs) return t.skip(tmpfs.skip)
  const reports: { store: unknown; operation: string; error: { code?: string } }[] = []
  const listen = (message: unknown) => reports.push(message as (typeof reports)[number])
  storeErrorChannel.subscribe(listen)
  try {
    const path = join(tmpfs.dir, 'cache.db')
    const store = new SqliteStore({ path, sweepIntervalMs: 0 })
    const filler = join(tmpfs.dir, 'filler')
    let fillerBytes = 1024 * KIB
    for (;;) {
      try {
        writeFileSync(filler, Buffer.alloc(fillerBytes))
        break
      } catch {
        fillerBytes -= 4 * KIB
      }
    }
    await Promise.all(writers(store, 3, 2 * KIB).map((writer) => writer.commitSoon?.()))
    await sleep(COMMIT_DELAY_MS + 50)
    assert.deepEqual(
      reports.map((report) => [report.store === store, report.operation, report.error.code]),
      [
        [true, 'commit', 'SQLITE_FULL'],
        [true, 'commit', 'SQLITE_FULL'],
        [true, 'commit', 'SQLITE_FULL'],
      ],
    )
    assert.deepEqual(store.get('k0'), [])
    assert.deepEqual(store.stats(), { totalBytes: 0, entryCount: 0 })
    rmSync(filler)
    await Promise.all(writers(store, 2).map((writer) => writer.commitSoon?.()))
    assert.deepEqual(await readBody(entryAt(store.get('k1'))), patternBody(100, 1))
    assert.equal(store.stats().entryCount, 2)
    store.close()
  } finally {
    storeErrorChannel.unsubscribe(listen)
    tmpfs.unmount()
  }
})

test('a write cancelled by delete() among queued commits stores nothing; the others land', async () => {
  const store = new SqliteStore({ path: join(dir, 'fail.db'), chunkBytes: 1024 })
  const [first, second, third] = writers(store, 3)
  const chunked = store.put('chunked', sampleMeta())
  chunked?.write(patternBody(3000, 9))
  const firstDone = first?.commitSoon?.()
  store.delete('chunked')
  const results = await Promise.allSettled([
    firstDone,
    chunked?.commitSoon?.(),
    second?.commitSoon?.(),
    third?.commitSoon?.(),
  ])
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'],
  )
  assert.deepEqual(store.get('chunked'), [])
  assert.equal(store.get('k2').length, 1)
  assert.equal(store.stats().entryCount, 3)
  store.close()
})

test('two commits of one key in the same millisecond keep their commit order (newest first)', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_800_000_000_000 })
  const store = new SqliteStore({ path: join(dir, 'order.db'), chunkBytes: 1024 })
  const first = store.put('k', sampleMeta({ varyKey: 'first' }))
  const second = store.put('k', sampleMeta({ varyKey: 'second' }))
  assert.ok(first && second)
  second.write(patternBody(1024, 1))
  first.commit()
  second.commit()
  assert.deepEqual(
    store.get('k').map((entry) => entry.varyKey),
    ['second', 'first'],
  )
  store.close()
})

test("another store of this process on the file commits this store's queue before delete, stats and reads", async () => {
  const path = join(dir, 'peers.db')
  const linked = join(dir, 'linked')
  symlinkSync(dir, linked)
  const store = new SqliteStore({ path, sweepIntervalMs: 0 })
  const other = new SqliteStore({ path: join(linked, 'peers.db'), sweepIntervalMs: 0 })
  await Promise.all(writers(store, 2).map((writer) => writer.commitSoon?.()))
  assert.equal(other.stats().entryCount, 2, 'stats (through a symbolic link) counts the queued commits')
  await Promise.all(writers(store, 1).map((writer) => writer.commitSoon?.()))
  other.delete('k0')
  await sleep(COMMIT_DELAY_MS + 20)
  assert.deepEqual(other.get('k0'), [], 'the queued commit went first, then the delete')
  assert.deepEqual(store.get('k0'), [])
  store.close()
  other.close()
})

test('commit() after a queued commit of the same variant stays the newest', async () => {
  const store = new SqliteStore({ path: join(dir, 'newest.db'), sweepIntervalMs: 0 })
  const older = store.put('k', sampleMeta())
  const newer = store.put('k', sampleMeta())
  assert.ok(older?.commitSoon && newer)
  older.write(Buffer.from('older'))
  newer.write(Buffer.from('newer'))
  await older.commitSoon()
  newer.commit()
  await sleep(COMMIT_DELAY_MS + 20)
  assert.deepEqual(
    store.get('k').map((entry) => entry.body?.toString()),
    ['newer'],
  )
  store.close()
})

test('a queue that meets a write lock held past the busy timeout fails at once, each commit reported once', async () => {
  const path = join(dir, 'busy.db')
  const store = new SqliteStore({ path, sweepIntervalMs: 0 })
  const reports: { operation: string; error: { code?: string } }[] = []
  const listen = (message: unknown) => reports.push(message as (typeof reports)[number])
  storeErrorChannel.subscribe(listen)
  try {
    await Promise.all(writers(store, 3).map((writer) => writer.commitSoon?.()))
    const otherProcess = new Database(path)
    otherProcess.prepare('BEGIN IMMEDIATE').run()
    const startedMs = performance.now()
    const entries = store.get('k0')
    const waitedMs = performance.now() - startedMs
    otherProcess.prepare('ROLLBACK').run()
    otherProcess.close()
    assert.deepEqual(entries, [])
    assert.ok(waitedMs < 2 * BUSY_TIMEOUT_MS, `waited ${Math.round(waitedMs)} ms: once, not once per commit`)
    assert.deepEqual(
      reports.map((report) => [report.operation, report.error.code]),
      [
        ['commit', 'SQLITE_BUSY'],
        ['commit', 'SQLITE_BUSY'],
        ['commit', 'SQLITE_BUSY'],
      ],
    )
  } finally {
    storeErrorChannel.unsubscribe(listen)
    store.close()
  }
})
