import assert from 'node:assert/strict'
import { type ChildProcess, fork } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { StoredEntry } from '../../lib/stores/store.js'
import { FINALS_PER_WORKER, type LoadReport, WORKER_KEYS, WORKER_STORE } from './child-worker.js'
import { bodyFileNames, bodyFileSize, entryAt, readBody } from './helpers.js'

const WORKERS = 4
const LOAD_MS = Number(process.env.UNDICI_CACHE_STRESS_MS ?? 10_000)
const SCRIPT = fileURLToPath(new URL('./child-worker.ts', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'undici-cache-processes-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** The next message of `type` from a worker; rejects if the worker exits first (never waits for ever). */
function nextMessage<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`worker exited (${code}) before its ${type}`))
    const onMessage = (message: { type: string }) => {
      if (message.type !== type) return
      child.off('message', onMessage)
      child.off('exit', onExit)
      resolve(message as T)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

/** The body must have the size and sha256 its headers announce. */
async function assertIntact(entry: StoredEntry): Promise<void> {
  const body = await readBody(entry)
  assert.equal(body.length, entry.sizeBytes)
  assert.equal(String(body.length), entry.headers['x-size'])
  assert.equal(createHash('sha256').update(body).digest('hex'), entry.headers['x-sha256'])
}

/** The value at quantile q of sorted numbers. */
const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0

/** Sums the ops, errors and latencies of every worker. */
function combine(reports: LoadReport[]) {
  const ops: Record<string, number> = {}
  const errors: Record<string, number> = {}
  for (const report of reports) {
    for (const [name, n] of Object.entries(report.ops)) ops[name] = (ops[name] ?? 0) + n
    for (const [message, n] of Object.entries(report.errors)) errors[message] = (errors[message] ?? 0) + n
  }
  const latencies = reports.flatMap((report) => report.latenciesMs).sort((a, b) => a - b)
  return {
    ops,
    errors,
    totalOps: Object.values(ops).reduce((sum, n) => sum + n, 0),
    goneWhileRead: reports.reduce((sum, report) => sum + report.goneWhileRead, 0),
    committed: new Set(reports.flatMap((report) => report.committed)),
    committedBytes: reports.reduce((sum, report) => sum + report.committedBytes, 0),
    p99Ms: quantile(latencies, 0.99),
    maxMs: quantile(latencies, 1),
  }
}

/** Body files without their row, and complete rows whose body file is missing or of another size. */
function bodyFileState(path: string, raw: Database.Database) {
  const names = bodyFileNames(path)
  const rows = raw.prepare('SELECT id, body_bytes, complete FROM entries WHERE body_file = 1').all() as {
    id: number
    body_bytes: number
    complete: number
  }[]
  const ids = new Set(rows.map((row) => String(row.id)))
  return {
    bodyFiles: names.length > 0,
    strayBodyFiles: names.filter((name) => !ids.has(name)).length,
    brokenBodyFiles: rows.filter((row) => row.complete === 1 && bodyFileSize(path, row.id) !== row.body_bytes)
      .length,
  }
}

/** What the file holds once every worker has exited, read with a plain connection. */
function fileState(path: string) {
  const raw = new Database(path, { readonly: true })
  const count = (sql: string) => (raw.prepare(sql).get() as { n: number }).n
  const state = {
    integrity: raw.pragma('integrity_check', { simple: true }),
    totalsMatchRows: count(
      `SELECT (SELECT bytes FROM totals) = (SELECT COALESCE(SUM(size_bytes), 0) FROM entries WHERE complete = 1)
         AND (SELECT entries FROM totals) = (SELECT COUNT(*) FROM entries WHERE complete = 1) AS n`,
    ),
    orphanChunks: count('SELECT COUNT(*) AS n FROM chunks WHERE entry_id NOT IN (SELECT id FROM entries)'),
    ...bodyFileState(path, raw),
  }
  const unfinished = count('SELECT COUNT(*) AS n FROM entries WHERE complete = 0')
  raw.close()
  return { state, unfinished }
}

test(`${WORKERS} processes share one file for ${LOAD_MS} ms: no busy error, nothing lost or torn`, async (t) => {
  const path = join(dir, 'shared.db')
  const workers = Array.from({ length: WORKERS }, (_, id) =>
    fork(SCRIPT, [path, String(id), String(LOAD_MS)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' }),
  )
  const exits = workers.map((worker) => once(worker, 'exit'))
  const reports = await Promise.all(
    workers.map((worker) => nextMessage<{ report: LoadReport }>(worker, 'load').then((m) => m.report)),
  )
  for (const worker of workers) worker.send({ type: 'finals' })
  const finals = await Promise.all(
    workers.map((worker) => nextMessage<{ keys: string[] }>(worker, 'finals').then((m) => m.keys)),
  )
  for (const worker of workers) worker.send({ type: 'exit' })
  assert.deepEqual(
    (await Promise.all(exits)).map(([code]) => code),
    workers.map(() => 0),
  )

  const load = combine(reports)
  t.diagnostic(
    `${load.totalOps} store calls in ${LOAD_MS} ms (${Math.round((load.totalOps * 1000) / LOAD_MS)}/s): ` +
      `${JSON.stringify(load.ops)}; ${load.committed.size} commits of ${load.committedBytes} body bytes; ${load.goneWhileRead} bodies gone while read; ` +
      `call latency p99 ${load.p99Ms.toFixed(2)} ms, max ${load.maxMs.toFixed(1)} ms`,
  )
  assert.deepEqual(load.errors, {})
  assert.ok(load.totalOps > WORKERS * 100, `only ${load.totalOps} calls`)
  assert.ok(load.committedBytes > 10 * WORKER_STORE.maxBytes, 'too few bytes written to force eviction')

  const { state, unfinished } = fileState(path)
  assert.deepEqual(state, {
    integrity: 'ok',
    totalsMatchRows: 1,
    orphanChunks: 0,
    bodyFiles: true,
    strayBodyFiles: 0,
    brokenBodyFiles: 0,
  })
  const store = new SqliteStore({ ...WORKER_STORE, path, sweepIntervalMs: 0 })
  assert.deepEqual(
    fileState(path),
    { state, unfinished: 0 },
    `${unfinished} unfinished rows before this open`,
  )
  const stats = store.stats()
  assert.ok(stats.totalBytes <= WORKER_STORE.maxBytes && stats.entryCount <= WORKER_STORE.maxEntries)
  const keys = [...Array.from({ length: WORKER_KEYS }, (_, i) => `k${i}`), ...finals.flat()]
  let present = 0
  for (const key of keys) {
    for (const entry of store.get(key)) {
      await assertIntact(entry)
      assert.ok(load.committed.has(entry.headers['x-write'] as string) || key.startsWith('final-'))
      present += 1
    }
  }
  assert.equal(present, stats.entryCount, 'every entry in the file is one a worker committed')
  for (const key of finals.flat()) await assertIntact(entryAt(store.get(key)))
  assert.equal(finals.flat().length, WORKERS * FINALS_PER_WORKER)
  store.close()
})
