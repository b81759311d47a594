import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, type TestContext, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { StoredEntry } from '../../lib/stores/store.js'
import { bodyFileNames, bodyFileSize, entryAt, readChunks } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-crash-'))
after(() => rmSync(dir, { recursive: true, force: true }))
const KILLS_PER_MODE = Number(process.env.UNDICI_CACHE_CRASH_KILLS ?? 10)
const MAX_KILL_DELAY_MS = 300
const SCRIPT = fileURLToPath(new URL('./child-crash-writer.ts', import.meta.url))

/** One commit line of the child: key, sha256, ms spent in commit() so far, ms since start. */
interface Commit {
  key: string
  sha256: string
  commitMs: number
  elapsedMs: number
}

/** Starts the writer, kills it `delayMs` after its store opened; resolves to its pid and commits. */
async function killWriterAfter(path: string, mode: string, storage: Storage, delayMs: number) {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, path, mode, storage], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let output = ''
  let ready: () => void = () => {}
  const started = new Promise<void>((resolve) => {
    ready = resolve
  })
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    output += text
    if (output.startsWith('ready\n')) ready()
  })
  // 'close', not 'exit': only then has all of the child's stdout been read.
  const exited = once(child, 'close')
  await Promise.race([started, exited])
  await sleep(delayMs)
  child.kill('SIGKILL')
  const [exitCode, signal] = await exited
  assert.deepEqual({ exitCode, signal }, { exitCode: null, signal: 'SIGKILL' }, `child output: ${output}`)
  const commits = output
    .split('\n')
    .filter((line) => line.startsWith('committed '))
    .map((line): Commit => {
      const [, key = '', sha256 = '', commitMs, elapsedMs] = line.split(' ')
      return { key, sha256, commitMs: Number(commitMs), elapsedMs: Number(elapsedMs) }
    })
  return { pid: child.pid as number, commits }
}

/** Where the writer puts bodies longer than one chunk. */
type Storage = 'rows' | 'files'

/**
 * Body files that do not match a complete row's size (missing, short, long), and files that belong to
 * no complete row (a killed writer's, until the next open cleans up).
 */
function inspectFiles(path: string, raw: Database.Database) {
  const rows = raw
    .prepare('SELECT id, body_bytes FROM entries WHERE complete = 1 AND body_file = 1')
    .all() as { id: number; body_bytes: number }[]
  const complete = new Set(rows.map((row) => String(row.id)))
  return {
    brokenFiles: rows.filter((row) => bodyFileSize(path, row.id) !== row.body_bytes).length,
    strayFiles: bodyFileNames(path).filter((name) => !complete.has(name)).length,
  }
}

/** What the killed writer left, read with a plain connection before any store opens the file. */
function inspectAfterKill(path: string, pid: number) {
  const raw = new Database(path)
  const one = <T>(sql: string, ...params: unknown[]) => raw.prepare(sql).get(...params) as T
  const { brokenFiles, strayFiles } = inspectFiles(path, raw)
  const state = {
    integrity: raw.pragma('integrity_check', { simple: true }),
    totalsMatchRows: one<{ ok: number }>(
      `SELECT (SELECT bytes FROM totals) = (SELECT COALESCE(SUM(size_bytes), 0) FROM entries WHERE complete = 1)
         AND (SELECT entries FROM totals) = (SELECT COUNT(*) FROM entries WHERE complete = 1) AS ok`,
    ).ok,
    orphanChunks: one<{ n: number }>(
      'SELECT COUNT(*) AS n FROM chunks WHERE entry_id NOT IN (SELECT id FROM entries)',
    ).n,
    brokenBodies: one<{ n: number }>(
      `SELECT COUNT(*) AS n FROM (SELECT e.id FROM entries e LEFT JOIN chunks c ON c.entry_id = e.id
         WHERE e.complete = 1 AND e.body IS NULL AND e.body_file = 0 GROUP BY e.id
         HAVING COALESCE(SUM(length(c.data)), 0) != e.body_bytes OR COUNT(c.seq) != COALESCE(MAX(c.seq) + 1, 0))`,
    ).n,
    brokenFiles,
    unfinishedRows: one<{ n: number }>(
      'SELECT COUNT(*) AS n FROM entries WHERE complete = 0 AND writer_pid = ?',
      pid,
    ).n,
  }
  raw.close()
  return { state, strayFiles }
}

/** Reads a whole body chunk by chunk; it must have the size and sha256 its headers announce. */
async function assertIntact(entry: StoredEntry): Promise<void> {
  const hash = createHash('sha256')
  let readBytes = 0
  for (const chunk of await readChunks(entry)) {
    hash.update(chunk)
    readBytes += chunk.length
  }
  assert.equal(readBytes, entry.sizeBytes)
  assert.equal(String(readBytes), entry.headers['x-size'])
  assert.equal(hash.digest('hex'), entry.headers['x-sha256'])
}

/**
 * Kill, inspect, reopen and read back, KILLS_PER_MODE times on one file; in body mode up to three
 * times as often until a kill lands in the middle of a body (a fast machine can miss it ten times).
 */
async function crashLoop(t: TestContext, mode: 'body' | 'evict', storage: Storage) {
  const path = join(dir, `${mode}-${storage}.db`)
  const committed: string[] = []
  let killsWithLeftovers = 0
  let expectedKillsInCommit = 0
  const killMore = (kill: number) =>
    kill < KILLS_PER_MODE || (mode === 'body' && killsWithLeftovers === 0 && kill < 3 * KILLS_PER_MODE)
  let kill = 0
  for (; killMore(kill); kill++) {
    const delayMs = Math.floor(Math.random() * MAX_KILL_DELAY_MS)
    const { pid, commits } = await killWriterAfter(path, mode, storage, delayMs)
    const last = commits.at(-1)
    if (last) expectedKillsInCommit += last.commitMs / last.elapsedMs
    committed.push(...commits.map((commit) => commit.key))

    const { state } = inspectAfterKill(path, pid)
    const { unfinishedRows, ...consistency } = state
    assert.deepEqual(consistency, {
      integrity: 'ok',
      totalsMatchRows: 1,
      orphanChunks: 0,
      brokenBodies: 0,
      brokenFiles: 0,
    })
    if (unfinishedRows > 0) killsWithLeftovers += 1

    const store = new SqliteStore({ path, sweepIntervalMs: 0 })
    assert.equal(store.failure, undefined)
    assert.deepEqual(inspectAfterKill(path, pid), {
      state: { ...consistency, unfinishedRows: 0 },
      strayFiles: 0,
    })
    if (last) await assertIntact(entryAt(store.get(last.key)))
    for (const key of committed) for (const entry of store.get(key)) await assertIntact(entry)
    store.close()
  }
  t.diagnostic(
    `${mode} (${storage}): ${kill} kills, ${killsWithLeftovers} left an unfinished row (cleaned on open), ` +
      `${committed.length} commits; ~${expectedKillsInCommit.toFixed(1)} kills expected inside commit()`,
  )
  return killsWithLeftovers
}

for (const storage of ['files', 'rows'] as const) {
  test(`a writer SIGKILLed at random moments (${KILLS_PER_MODE} times mid-body, ${KILLS_PER_MODE} mid-eviction), bodies in ${storage}, never leaves a partial entry`, async (t) => {
    const [bodyLeftovers] = await Promise.all([crashLoop(t, 'body', storage), crashLoop(t, 'evict', storage)])
    assert.ok(bodyLeftovers > 0, 'no kill landed in the middle of a body')
  })
}
