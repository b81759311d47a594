import assert from 'node:assert/strict'
import diagnosticsChannel from 'node:diagnostics_channel'
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import Database from 'better-sqlite3'
import { mayPass } from '../../lib/stores/sqlite-open.js'
import { BUSY_TIMEOUT_MS } from '../../lib/stores/sqlite-schema.js'
import { REOPEN_INTERVAL_MS, SqliteStore } from '../../lib/stores/sqlite-store.js'
import { makeAgent, send, tempDir } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'
import {
  damageRootPage,
  entryAt,
  fdsOnFile,
  patternBody,
  readBody,
  sampleMeta,
  storeBody,
} from './helpers.js'
import { mountTmpfs } from './sqlite-mounts.js'

const KIB = 1024
let origin: Origin
before(async () => {
  origin = await startOrigin((req, res) =>
    reply(res, 200, { 'cache-control': 'max-age=600' }, `ok ${req.url}`),
  )
})
after(() => origin.close())

/** Runs `body` with Date.now() `aheadMs` ahead of the clock, as if that much time had passed. */
async function later<T>(aheadMs: number, body: () => Promise<T> | T): Promise<T> {
  const realNow = Date.now
  Date.now = () => realNow() + aheadMs
  try {
    return await body()
  } finally {
    Date.now = realNow
  }
}

/** The store's 'open' reports on the diagnostics channel while `body` runs. */
async function openReports(body: () => Promise<void>): Promise<unknown[]> {
  const reports: unknown[] = []
  const listen = (message: unknown) => {
    const { operation, error } = message as { operation: string; error: unknown }
    if (operation === 'open') reports.push(error)
  }
  diagnosticsChannel.subscribe('undici-cache:store-error', listen)
  try {
    await body()
  } finally {
    diagnosticsChannel.unsubscribe('undici-cache:store-error', listen)
  }
  return reports
}

test('a store whose open found the file locked passes requests through, then opens again once the lock is gone', async () => {
  const path = join(tempDir(), 'locked.db')
  new SqliteStore({ path, sweepIntervalMs: 0 }).close()
  const otherProcess = new Database(path)
  otherProcess.pragma('locking_mode = EXCLUSIVE')
  otherProcess.exec('BEGIN EXCLUSIVE; COMMIT') // the lock stays held, reads too are refused
  const warnings: string[] = []
  const onWarning = (warning: Error) => warnings.push(warning.message)
  process.on('warning', onWarning)
  const store = new SqliteStore({ path, sweepIntervalMs: 0 })
  const cache = makeAgent(store)
  const url = `${origin.url}/locked`
  const failure = `SqliteStore cannot use ${path}: database is locked (SQLITE_BUSY)`
  try {
    assert.equal(store.failure?.message, failure)
    const first = await send(cache.agent, url)
    assert.equal(first.headers['cache-status'], 'undici-cache; fwd=miss; detail=store-error')
    // a try while the lock is still held fails at once: it runs within a request
    const retriedMs = await later(REOPEN_INTERVAL_MS, async () => {
      const startedMs = performance.now()
      const reply = await send(cache.agent, url)
      assert.equal(reply.headers['cache-status'], 'undici-cache; fwd=miss; detail=store-error')
      return performance.now() - startedMs
    })
    assert.ok(retriedMs < BUSY_TIMEOUT_MS / 10, `the request with a try took ${Math.round(retriedMs)} ms`)
    otherProcess.close()
    // free now, but the last try was less than REOPEN_INTERVAL_MS ago
    await later(REOPEN_INTERVAL_MS + REOPEN_INTERVAL_MS / 2, async () => {
      const reply = await send(cache.agent, url)
      assert.equal(reply.headers['cache-status'], 'undici-cache; fwd=miss; detail=store-error')
      assert.equal(store.failure?.message, failure)
    })
    await later(2 * REOPEN_INTERVAL_MS, async () => {
      const stored = await send(cache.agent, url)
      assert.equal(stored.headers['cache-status'], 'undici-cache; fwd=miss; stored')
      assert.equal(store.failure, undefined)
      const hit = await send(cache.agent, url)
      assert.match(String(hit.headers['cache-status']), /^undici-cache; hit; ttl=\d+$/)
      assert.equal(hit.body, 'ok /locked')
    })
    assert.equal(origin.count('/locked'), 4)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(warnings.filter((message) => message.includes('store open failed')).length, 1)
  } finally {
    process.off('warning', onWarning)
    if (otherProcess.open) otherProcess.close()
    await cache.close()
  }
})

test('a file that is not a database, of a newer schema, or a directory is not opened again, nor changed', async () => {
  const dir = tempDir()
  const notDatabase = join(dir, 'not-sqlite.db')
  writeFileSync(notDatabase, 'plain text, not SQLite')
  const newer = join(dir, 'newer.db')
  const raw = new Database(newer)
  raw.pragma('user_version = 99')
  raw.close()
  const directory = join(dir, 'a-directory.db')
  mkdirSync(directory)
  for (const path of [notDatabase, newer, directory]) {
    const bytes = directory === path ? undefined : readFileSync(path)
    let store: SqliteStore | undefined
    const reports = await openReports(async () => {
      store = new SqliteStore({ path, sweepIntervalMs: 0 })
      const failure = store.failure?.message
      assert.ok(failure, path)
      await later(2 * REOPEN_INTERVAL_MS, () => {
        assert.throws(() => store?.get('k'), { message: failure })
        assert.throws(() => store?.put('k', sampleMeta()), { message: failure })
      })
    })
    assert.equal(reports.length, 1, `${path}: opened once`)
    if (bytes) assert.deepEqual(readFileSync(path), bytes)
    store?.close()
  }
})

test('which failures may pass: locks, a full disk, descriptors, permissions; not a damaged or foreign file', () => {
  const failure = (code?: string) => new Error('x', { cause: Object.assign(new Error('y'), { code }) })
  for (const code of [
    'SQLITE_BUSY',
    'SQLITE_BUSY_RECOVERY',
    'SQLITE_FULL',
    'SQLITE_CANTOPEN',
    'SQLITE_IOERR_WRITE',
    'ENOSPC',
    'EMFILE',
    'EACCES',
    'EROFS',
  ]) {
    assert.equal(mayPass(failure(code)), true, code)
  }
  for (const code of ['SQLITE_NOTADB', 'SQLITE_CORRUPT', 'SQLITE_CORRUPT_INDEX', 'SQLITE_ERROR', undefined]) {
    assert.equal(mayPass(failure(code)), false, String(code))
  }
  assert.equal(mayPass(new Error('no cause')), false)
})

test('a store made on a full disk opens once there is room again, and stores', async (t) => {
  const tmpfs = mountTmpfs(256 * KIB)
  if ('skip' in tmpfs) return t.skip(tmpfs.skip)
  try {
    const filler = join(tmpfs.dir, 'filler')
    writeFileSync(filler, Buffer.alloc(256 * KIB - 4 * KIB))
    const path = join(tmpfs.dir, 'cache.db')
    const store = new SqliteStore({ path, sweepIntervalMs: 0 })
    const failure = store.failure
    assert.ok(failure, 'the open failed')
    t.diagnostic(failure.message)
    assert.equal(mayPass(failure), true)
    assert.throws(() => store.get('k'), { message: failure.message })
    rmSync(filler)
    await later(REOPEN_INTERVAL_MS, async () => {
      assert.deepEqual(store.get('k'), [])
      assert.equal(store.failure, undefined)
      await storeBody(store, 'k', sampleMeta(), patternBody(20 * KIB, 7), 8 * KIB)
      assert.deepEqual(await readBody(entryAt(store.get('k'))), patternBody(20 * KIB, 7))
    })
    store.close()
  } finally {
    tmpfs.unmount()
  }
})

test("damage only the open's totals read finds (the cleanup skipped: the lock held) fails the store, with nothing left open", async (t) => {
  if (process.platform !== 'linux') return t.skip('counts descriptors in /proc/self/fd')
  const path = join(tempDir(), 'damaged-totals.db')
  const writer = new SqliteStore({ path, sweepIntervalMs: 0 })
  await storeBody(writer, 'k', sampleMeta(), patternBody(100, 1))
  writer.close()
  damageRootPage(path, 'totals')
  const lockHolder = new Database(path)
  lockHolder.exec('BEGIN IMMEDIATE')
  try {
    const store = new SqliteStore({ path, sweepIntervalMs: 0 })
    assert.match(String(store.failure), /malformed \(SQLITE_CORRUPT\)/)
    assert.equal(mayPass(store.failure as Error), false)
    assert.throws(() => store.get('k'), { message: store.failure?.message })
    store.close()
  } finally {
    lockHolder.exec('ROLLBACK')
    lockHolder.close()
  }
  assert.equal(fdsOnFile(path), 0)
})

test("onCorrupt 'recreate' on a full disk: the corrupt file is moved aside and said so; the new one opens once there is room", async (t) => {
  const tmpfs = mountTmpfs(512 * KIB)
  if ('skip' in tmpfs) return t.skip(tmpfs.skip)
  try {
    const path = join(tmpfs.dir, 'cache.db')
    const writer = new SqliteStore({ path, sweepIntervalMs: 0 })
    await storeBody(writer, 'k', sampleMeta(), patternBody(100, 1))
    writer.close()
    const fd = openSync(path, 'r+')
    writeSync(fd, patternBody(3000, 8), 0, 3000, 100) // the first page: corrupt, the header intact
    closeSync(fd)
    const filler = join(tmpfs.dir, 'filler')
    const free = statfsSync(tmpfs.dir)
    // room for the file moved aside (a rename), not for a new one
    writeFileSync(filler, Buffer.alloc(free.bavail * free.bsize - 36 * KIB))
    const warnings: string[] = []
    const onWarning = (warning: Error & { code?: string }) => {
      if (warning.message.includes(path)) warnings.push(String(warning.code))
    }
    process.on('warning', onWarning)
    let store: SqliteStore | undefined
    try {
      store = new SqliteStore({ path, onCorrupt: 'recreate', sweepIntervalMs: 0 })
      await new Promise((resolve) => setImmediate(resolve))
    } finally {
      process.off('warning', onWarning)
    }
    const copyPath = store.corruptCopyPath
    t.diagnostic(String(store.failure?.message))
    assert.ok(
      store.failure && mayPass(store.failure),
      'the new file could not be made: a failure that may pass',
    )
    assert.match(String(copyPath), /cache\.db\.corrupt-\d+$/)
    assert.deepEqual(warnings, ['UNDICI_CACHE_STORE_RECREATED', 'UNDICI_CACHE_STORE_ERROR'])
    rmSync(filler)
    await later(REOPEN_INTERVAL_MS, async () => {
      assert.deepEqual(store?.get('k'), [])
      assert.equal(store?.failure, undefined)
      assert.equal(store?.corruptCopyPath, copyPath)
    })
    store.close()
  } finally {
    tmpfs.unmount()
  }
})
