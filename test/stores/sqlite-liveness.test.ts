import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { Worker } from 'node:worker_threads'
import Database from 'better-sqlite3'
import {
  type IncompleteRow,
  isAbandoned,
  processToken,
  STALE_WRITE_MS,
  THIS_WRITER,
} from '../../lib/stores/sqlite-liveness.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { patternBody, sampleMeta, storeBody } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-liveness-'))
after(() => rmSync(dir, { recursive: true, force: true }))
const NOW_MS = Date.now()

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await once(child, 'exit')
  return child.pid as number
}

const row = (overrides: Partial<IncompleteRow>): IncompleteRow => ({
  id: 1,
  written_ms: NOW_MS,
  writer_host: THIS_WRITER.host,
  writer_pid: THIS_WRITER.pid,
  writer_token: THIS_WRITER.token,
  ...overrides,
})

const onLinux = process.platform === 'linux' ? false : 'the token comes from /proc on Linux only'

test('THIS_WRITER is this host and process; the token is the boot id and start time', {
  skip: onLinux,
}, () => {
  assert.equal(THIS_WRITER.host, hostname())
  assert.equal(THIS_WRITER.pid, process.pid)
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  const stat = readFileSync('/proc/self/stat', 'utf8')
  const startTicks = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  assert.equal(THIS_WRITER.token, `${bootId}:${startTicks}`)
  assert.match(THIS_WRITER.token, /^[0-9a-f-]{36}:\d+$/)
})

test('without /proc the token is 16 random hex digits', () => {
  const token = processToken(join(dir, 'no-proc'))
  assert.match(token, /^[0-9a-f]{16}$/)
  assert.notEqual(processToken(join(dir, 'no-proc')), token)
})

test('a worker thread has the same identity as its process, so it keeps the rows of other threads', {
  skip: onLinux,
}, async () => {
  const url = new URL('../../lib/stores/sqlite-liveness.ts', import.meta.url).href
  const code = `import('tsx/esm/api')
    .then(({ register }) => { register(); return import(${JSON.stringify(url)}) })
    .then((liveness) => require('node:worker_threads').parentPort.postMessage(liveness.THIS_WRITER))`
  const worker = new Worker(code, { eval: true })
  const [identity] = await once(worker, 'message')
  await worker.terminate()
  assert.deepEqual(identity, THIS_WRITER)
  const written = { writer_host: identity.host, writer_pid: identity.pid, writer_token: identity.token }
  assert.equal(isAbandoned(row(written), NOW_MS), false)
})

test('isAbandoned: idle rows, dead local writers and earlier holders of this pid; never live or foreign ones', async () => {
  const dead = await deadPid()
  const cases: [string, Partial<IncompleteRow>, boolean][] = [
    ['this process', {}, false],
    ['this process, idle past the limit', { written_ms: NOW_MS - STALE_WRITE_MS - 1 }, true],
    ['this process, idle exactly the limit', { written_ms: NOW_MS - STALE_WRITE_MS }, false],
    ['an earlier process with this pid', { writer_token: 'earlier' }, true],
    ['a live process here (the parent)', { writer_pid: process.ppid, writer_token: 'other' }, false],
    ['a dead process here', { writer_pid: dead, writer_token: 'other' }, true],
    ['a dead pid on another host', { writer_pid: dead, writer_host: 'elsewhere' }, false],
    ['another host, idle past the limit', { writer_host: 'elsewhere', written_ms: 0 }, true],
    ['unknown writer (schema 1)', { writer_pid: 0, writer_host: '', writer_token: '' }, false],
  ]
  for (const [name, overrides, expected] of cases) {
    assert.equal(isAbandoned(row(overrides), NOW_MS), expected, name)
  }
})

/** Inserts an incomplete row with one chunk, as a writer on `writer` would have left it. */
function insertUnfinished(db: Database.Database, key: string, writer: Partial<IncompleteRow>): void {
  const { written_ms, writer_host, writer_pid, writer_token } = row(writer)
  const id = db
    .prepare(
      `INSERT INTO entries (key, vary_key, complete, meta, written_ms, delete_at_ms, writer_host, writer_pid,
         writer_token) VALUES (?, '', 0, '{}', ?, 0, ?, ?, ?)`,
    )
    .run(key, written_ms, writer_host, writer_pid, writer_token).lastInsertRowid
  db.prepare('INSERT INTO chunks (entry_id, seq, data) VALUES (?, 0, ?)').run(id, patternBody(100, 1))
}

test('opening, and then each sweep, drop exactly the rows no live writer can finish', async () => {
  const path = join(dir, 'liveness.db')
  const store = new SqliteStore({ path, sweepIntervalMs: 0 })
  await storeBody(store, 'complete', sampleMeta({ deleteAtMs: 0 }), patternBody(10, 1))
  const raw = new Database(path)
  const dead = await deadPid()
  const writers: Record<string, Partial<IncompleteRow>> = {
    live: { writer_pid: process.ppid, writer_token: 'other' },
    dead: { writer_pid: dead, writer_token: 'other' },
    mine: {},
    'same-pid-earlier': { writer_token: 'earlier' },
    remote: { writer_host: 'elsewhere', writer_pid: dead },
    'remote-idle': { writer_host: 'elsewhere', written_ms: NOW_MS - STALE_WRITE_MS - 1 },
  }
  for (const [key, writer] of Object.entries(writers)) insertUnfinished(raw, key, writer)
  const keys = () => raw.prepare('SELECT key FROM entries ORDER BY id').pluck().all()
  const chunkOwners = () =>
    raw.prepare('SELECT e.key FROM chunks c JOIN entries e ON e.id = c.entry_id').pluck()

  assert.equal(store.sweep(NOW_MS), 3)
  assert.deepEqual(keys(), ['complete', 'live', 'mine', 'remote'])
  assert.deepEqual(chunkOwners().all(), ['live', 'mine', 'remote'])
  assert.deepEqual(raw.prepare('SELECT COUNT(*) AS n FROM chunks').get(), { n: 3 })

  insertUnfinished(raw, 'dead-again', { writer_pid: dead, writer_token: 'other' })
  store.close()
  const reopened = new SqliteStore({ path, sweepIntervalMs: 0 })
  assert.deepEqual(keys(), ['complete', 'live', 'mine', 'remote'], 'opening dropped dead-again')
  assert.deepEqual(reopened.stats(), {
    totalBytes: 10 + Buffer.byteLength(JSON.stringify(sampleMeta({ deleteAtMs: 0 }))),
    entryCount: 1,
  })
  reopened.close()
  raw.close()
})

test('rows of a live writer in this process survive a sweep and another store opening the file', async () => {
  const path = join(dir, 'own-writer.db')
  const store = new SqliteStore({ path, chunkBytes: 1024, sweepIntervalMs: 0 })
  const writer = store.put('k', sampleMeta({ deleteAtMs: 0 }))
  assert.ok(writer)
  writer.write(patternBody(2048, 1))
  assert.equal(store.sweep(NOW_MS), 0)
  const other = new SqliteStore({ path, sweepIntervalMs: 0 })
  writer.write(patternBody(100, 2))
  writer.commit()
  assert.equal(other.get('k')[0]?.sizeBytes, 2148)
  other.close()
  store.close()
})
