import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { after, test } from 'node:test'
import Database from 'better-sqlite3'
import { storeErrorChannel } from '../../lib/diagnostics.js'
import { SCHEMA_VERSION } from '../../lib/stores/sqlite-schema.js'
import { SqliteStore, type SqliteStoreOptions } from '../../lib/stores/sqlite-store.js'
import { entryAt, patternBody, readBody, sampleMeta, storeBody } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-faults-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const newPath = () => join(dir, `fault-${files++}.db`)

/** A working store file with one entry, closed. */
async function storeFile(path: string): Promise<void> {
  const store = new SqliteStore({ path })
  await storeBody(store, 'k', sampleMeta(), patternBody(5000, 1))
  store.close()
}

/** A way a file at the path can be unusable, made for real, with the failure it gives. */
interface Fault {
  name: string
  make(path: string): Promise<void> | void
  message: string
  corrupt: boolean
  /** False when SQLite itself opens the file: closing its failed connection deletes -wal and -shm. */
  sidecarsKept?: boolean
}

const faults: Fault[] = [
  {
    name: 'garbage bytes',
    make: (path) => writeFileSync(path, patternBody(4096, 7)),
    message: 'file has no SQLite header (SQLITE_NOTADB)',
    corrupt: true,
  },
  {
    name: 'a text file',
    make: (path) => writeFileSync(path, 'not a cache\n'),
    message: 'file has no SQLite header (SQLITE_NOTADB)',
    corrupt: true,
  },
  {
    name: 'a store file whose first page was overwritten',
    make: async (path) => {
      await storeFile(path)
      const fd = openSync(path, 'r+')
      writeSync(fd, patternBody(3000, 8), 0, 3000, 100)
      closeSync(fd)
    },
    message: 'database disk image is malformed (SQLITE_CORRUPT)',
    corrupt: true,
    sidecarsKept: false,
  },
  {
    name: 'a store file with a damaged index page',
    make: async (path) => {
      await storeFile(path)
      const raw = new Database(path, { readonly: true })
      const page = raw.prepare(`SELECT rootpage FROM sqlite_schema WHERE name = 'sqlite_autoindex_chunks_1'`)
      const pageNumber = page.pluck().get() as number
      const pageBytes = raw.pragma('page_size', { simple: true }) as number
      raw.close()
      const fd = openSync(path, 'r+')
      writeSync(fd, patternBody(pageBytes, 9), 0, pageBytes, (pageNumber - 1) * pageBytes)
      closeSync(fd)
    },
    message: 'database disk image is malformed (SQLITE_CORRUPT)',
    corrupt: true,
    sidecarsKept: false,
  },
  {
    name: 'a store file of a newer schema',
    make: async (path) => {
      await storeFile(path)
      const raw = new Database(path)
      raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`)
      raw.close()
    },
    message: `schema version ${SCHEMA_VERSION + 1} is newer than this undici-cache reads (${SCHEMA_VERSION}); upgrade undici-cache or use another path`,
    corrupt: false,
  },
  {
    name: 'an SQLite database of another program',
    make: (path) => {
      const raw = new Database(path)
      raw.exec('CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES (1)')
      raw.close()
    },
    message: 'it is an SQLite database of something else (user_version 0, has tables)',
    corrupt: false,
  },
]

test("onCorrupt 'recreate' through a symbolic link moves the file it names aside and keeps the link", async () => {
  const real = newPath()
  const link = newPath()
  writeFileSync(real, patternBody(4096, 7))
  symlinkSync(real, link)
  const { result: store } = await warningsOf(() => new SqliteStore({ path: link, onCorrupt: 'recreate' }))
  assert.equal(store.failure, undefined)
  await storeBody(store, 'k', sampleMeta(), patternBody(5000, 1))
  store.close()
  assert.equal(lstatSync(link).isSymbolicLink(), true)
  assert.equal(readFileSync(real).subarray(0, 15).toString(), 'SQLite format 3')
  assert.equal(readdirSync(dir).filter((name) => name.startsWith(`${basename(real)}.corrupt-`)).length, 1)
})

test('a FIFO or a directory at the path: the store fails at once (opening a FIFO would wait for a writer)', async () => {
  const fifo = newPath()
  execFileSync('mkfifo', [fifo])
  const directory = newPath()
  mkdirSync(directory)
  for (const path of [fifo, directory]) {
    const { result: store } = await warningsOf(() => new SqliteStore({ path }))
    assertFailed(store, `SqliteStore cannot use ${path}: not a regular file (SQLITE_CANTOPEN)`)
  }
})

/** Process warnings emitted while `run` runs (emitWarning delivers them on a later tick). */
async function warningsOf<T>(run: () => T): Promise<{ result: T; warnings: string[] }> {
  const warnings: string[] = []
  const listener = (warning: Error & { code?: string }) => {
    if (warning.code?.startsWith('UNDICI_CACHE')) warnings.push(`${warning.code} ${warning.message}`)
  }
  process.on('warning', listener)
  try {
    const result = run()
    await new Promise((resolve) => setImmediate(resolve))
    return { result, warnings }
  } finally {
    process.off('warning', listener)
  }
}

/** Every call but close throws the store's failure; close works, then calls say closed. */
function assertFailed(store: SqliteStore, message: string): void {
  assert.equal(store.failure?.message, message)
  const failure = store.failure as Error
  assert.throws(() => store.get('k'), failure)
  assert.throws(() => store.put('k', sampleMeta()), failure)
  assert.throws(() => store.update('k', 1, sampleMeta()), failure)
  assert.throws(() => store.delete('k'), failure)
  assert.throws(() => store.sweep(), failure)
  assert.throws(() => store.stats(), failure)
  store.close()
  store.close()
  assert.throws(() => store.get('k'), { message: 'undici-cache: SqliteStore is closed' })
}

for (const fault of faults) {
  test(`${fault.name}: the store fails without throwing, warns once, leaves the file alone`, async () => {
    const path = newPath()
    await fault.make(path)
    const before = readFileSync(path)
    const { result: store, warnings } = await warningsOf(() => new SqliteStore({ path }))
    const message = `SqliteStore cannot use ${path}: ${fault.message}`
    assert.deepEqual(warnings, [
      `UNDICI_CACHE_STORE_ERROR undici-cache: store open failed, passing requests through: ${message}`,
    ])
    assertFailed(store, message)
    assert.deepEqual(readFileSync(path), before)
    assert.equal(existsSync(`${path}-wal`), false)
  })

  test(`${fault.name}, onCorrupt 'recreate': ${fault.corrupt ? 'moved aside, new file' : 'left alone'}`, async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_800_000_000_000 })
    const path = newPath()
    await fault.make(path)
    writeFileSync(`${path}-wal`, 'old wal')
    writeFileSync(`${path}-shm`, 'old shm')
    const before = readFileSync(path)
    const options: SqliteStoreOptions = { path, onCorrupt: 'recreate', sweepIntervalMs: 0 }
    const { result: store, warnings } = await warningsOf(() => new SqliteStore(options))
    const copyPath = `${path}.corrupt-1800000000000`
    if (!fault.corrupt) {
      assert.equal(store.corruptCopyPath, undefined)
      assertFailed(store, `SqliteStore cannot use ${path}: ${fault.message}`)
      assert.equal(warnings.length, 1)
      assert.deepEqual(readFileSync(path), before)
      assert.equal(existsSync(copyPath), false)
      return
    }
    assert.equal(store.failure, undefined)
    assert.equal(store.corruptCopyPath, copyPath)
    assert.deepEqual(warnings, [
      `UNDICI_CACHE_STORE_RECREATED undici-cache: ${path} was corrupt (${fault.message}); ` +
        `moved it to ${copyPath} and started an empty cache`,
    ])
    assert.deepEqual(readFileSync(copyPath), before)
    if (fault.sidecarsKept === false) {
      assert.deepEqual([existsSync(`${copyPath}-wal`), existsSync(`${copyPath}-shm`)], [false, false])
    } else {
      assert.equal(readFileSync(`${copyPath}-wal`, 'utf8'), 'old wal')
      assert.equal(readFileSync(`${copyPath}-shm`, 'utf8'), 'old shm')
    }
    assert.deepEqual(store.get('k'), [])
    await storeBody(store, 'k', sampleMeta(), patternBody(3000, 2))
    assert.deepEqual(await readBody(entryAt(store.get('k'))), patternBody(3000, 2))
    store.close()
  })
}

test('a corrupt file that cannot be moved aside leaves the store failed and the file alone', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_800_000_000_000 })
  const path = newPath()
  writeFileSync(path, 'not a cache\n')
  mkdirSync(join(`${path}.corrupt-1800000000000`, 'taken'), { recursive: true })
  const store = new SqliteStore({ path, onCorrupt: 'recreate' })
  const rename = `rename '${path}' -> '${path}.corrupt-1800000000000'`
  assert.equal(store.corruptCopyPath, undefined)
  assertFailed(store, `SqliteStore cannot use ${path}: EISDIR: illegal operation on a directory, ${rename}`)
  assert.equal(readFileSync(path, 'utf8'), 'not a cache\n')
})

test(':memory: never fails, whatever the option', () => {
  const store = new SqliteStore({ path: ':memory:', onCorrupt: 'recreate' })
  assert.equal(store.failure, undefined)
  assert.deepEqual(store.get('k'), [])
  store.close()
})

/**
 * Opens the store and reads the body of its entry under 'k', which must fail with `failure`; then the
 * key must miss, and that read must be the only store error reported.
 */
async function assertReadDropsEntry(open: () => SqliteStore, failure: object): Promise<void> {
  const reported: string[] = []
  const listen = (message: unknown) => reported.push((message as { operation: string }).operation)
  storeErrorChannel.subscribe(listen)
  const store = open()
  try {
    const entry = entryAt(await store.get('k'))
    await assert.rejects(readBody(entry), failure)
    assert.deepEqual(await store.get('k'), [])
    assert.deepEqual(reported, ['read'])
  } finally {
    storeErrorChannel.unsubscribe(listen)
    store.close()
  }
}

test('a damaged chunk page: that read fails, the entry is dropped and reported, and the next get misses', async () => {
  const path = newPath()
  const options: SqliteStoreOptions = { path, bodyFiles: false, chunkBytes: 16 * 1024, hotBytes: 0 }
  const body = patternBody(300_000, 5)
  const store = new SqliteStore(options)
  await storeBody(store, 'k', sampleMeta(), body, 16 * 1024)
  store.close()
  const raw = new Database(path, { readonly: true })
  const pageBytes = raw.pragma('page_size', { simple: true }) as number
  raw.close()
  const file = readFileSync(path)
  const page = Math.floor(file.indexOf(body.subarray(150_000, 150_064)) / pageBytes) * pageBytes
  assert.ok(page > 0, 'the body is on a page of the file')
  const fd = openSync(path, 'r+')
  writeSync(fd, Buffer.alloc(pageBytes, 0xff), 0, pageBytes, page)
  closeSync(fd)
  await assertReadDropsEntry(() => new SqliteStore(options), { code: 'SQLITE_CORRUPT' })
})

test('a chunk row missing from an entry still there: that read fails, the entry is dropped and reported', async () => {
  const path = newPath()
  const options: SqliteStoreOptions = { path, bodyFiles: false, chunkBytes: 16 * 1024, hotBytes: 0 }
  const store = new SqliteStore(options)
  await storeBody(store, 'k', sampleMeta(), patternBody(300_000, 6), 16 * 1024)
  const other = new Database(path)
  assert.equal(other.prepare('DELETE FROM chunks WHERE seq IN (3, 4, 5)').run().changes, 3)
  other.close()
  await assertReadDropsEntry(() => store, {
    code: 'SQLITE_CORRUPT',
    message: /chunk 3 of entry \d+ is missing/,
  })
})
