import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { after, test } from 'node:test'
import v8 from 'node:v8'
import vm from 'node:vm'
import Database from 'better-sqlite3'
import { FILE_READ_BYTES } from '../../lib/stores/sqlite-body-files.js'
import { SqliteStore, type SqliteStoreOptions } from '../../lib/stores/sqlite-store.js'
import type { StoredEntry } from '../../lib/stores/store.js'
import {
  bodyDirOf,
  bodyFileNames,
  bodyFileOf,
  entryAt,
  linuxOnly,
  openBodyFds,
  patternBody,
  readBody,
  readChunks,
  sampleMeta,
  storeBody,
} from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-body-reads-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const newPath = () => join(dir, `store-${files++}.db`)
const KEPT = sampleMeta({ deleteAtMs: 0 })
/** Three reads: two of FILE_READ_BYTES and a short last one. */
const LONG_BYTES = 2 * FILE_READ_BYTES + 100

function openStore(path: string, options: SqliteStoreOptions = {}): SqliteStore {
  return new SqliteStore({ path, chunkBytes: 1024, sweepIntervalMs: 0, ...options })
}

/** Stores a body of LONG_BYTES in writes of 64 KiB (quicker than the helper's default). */
function storeLong(store: SqliteStore, key: string, seed: number): Promise<boolean> {
  return storeBody(store, key, KEPT, patternBody(LONG_BYTES, seed), 64 * 1024)
}

function count(path: string, table: 'entries' | 'chunks'): number {
  const raw = new Database(path, { readonly: true })
  try {
    return raw.prepare(`SELECT COUNT(*) AS n FROM ${table}`).pluck().get() as number
  } finally {
    raw.close()
  }
}

const goneMessage = (entry: StoredEntry) =>
  `undici-cache: body of entry ${entry.id} is gone (replaced or evicted while read)`
const iteratorOf = (entry: StoredEntry) => (entry.readBody() as AsyncIterable<Buffer>)[Symbol.asyncIterator]()

test('a body opened before a replace (its read started or not) still reads whole; one opened after is gone', async () => {
  const path = newPath()
  const store = openStore(path, { chunkBytes: 64 * 1024 })
  await storeLong(store, 'k', 1)
  const old = entryAt(store.get('k'))
  const started = iteratorOf(old)
  const notStarted = iteratorOf(old)
  const first = await started.next()
  assert.deepEqual(first, { done: false, value: patternBody(LONG_BYTES, 1).subarray(0, FILE_READ_BYTES) })

  await storeLong(store, 'k', 2)
  const current = entryAt(store.get('k'))
  assert.notEqual(current.id, old.id)
  assert.deepEqual(bodyFileNames(path), [String(current.id)])
  const rest: Buffer[] = []
  for (let step = await started.next(); !step.done; step = await started.next()) rest.push(step.value)
  assert.deepEqual(
    rest.map((chunk) => chunk.length),
    [FILE_READ_BYTES, 100],
  )
  assert.deepEqual(Buffer.concat([first.value as Buffer, ...rest]), patternBody(LONG_BYTES, 1))

  // opened as the response started: another process's replace does not cut it off after its headers
  const notStartedChunks: Buffer[] = []
  for (let step = await notStarted.next(); !step.done; step = await notStarted.next())
    notStartedChunks.push(step.value)
  assert.deepEqual(Buffer.concat(notStartedChunks), patternBody(LONG_BYTES, 1))
  assert.throws(() => old.readBody(), { message: goneMessage(old) })
  assert.deepEqual(await readBody(entryAt(store.get('k'))), patternBody(LONG_BYTES, 2))
  assert.deepEqual(bodyFileNames(path), [String(current.id)], 'the stale read dropped nothing else')
  store.close()
})

test('a body file removed by hand: readBody throws at once and the entry is dropped', async () => {
  const path = newPath()
  // hotBytes: 0, or 'other', read whole below, would be served from memory after its file is gone.
  const store = openStore(path, { hotBytes: 0 })
  await storeBody(store, 'k', KEPT, patternBody(3584, 1))
  await storeBody(store, 'other', KEPT, patternBody(3000, 2))
  const entry = entryAt(store.get('k'))
  unlinkSync(bodyFileOf(path, entry.id))
  assert.throws(() => entry.readBody(), { message: goneMessage(entry) })
  assert.deepEqual(store.get('k'), [])
  assert.equal(count(path, 'entries'), 1)
  assert.deepEqual(store.stats().entryCount, 1)
  assert.deepEqual(await readBody(entryAt(store.get('other'))), patternBody(3000, 2))

  // Once closed, the store cannot drop the entry: the read still says gone, not closed.
  const other = entryAt(store.get('other'))
  store.close()
  unlinkSync(bodyFileOf(path, other.id))
  assert.throws(() => other.readBody(), { message: goneMessage(other) })
  assert.equal(count(path, 'entries'), 1)
})

test('a truncated body file: readBody throws its size and the entry and file are dropped', async () => {
  const path = newPath()
  const store = openStore(path)
  await storeBody(store, 'k', KEPT, patternBody(3584, 1))
  const entry = entryAt(store.get('k'))
  const file = bodyFileOf(path, entry.id)
  truncateSync(file, 1000)
  assert.throws(() => entry.readBody(), {
    message: `undici-cache: body file ${file} has 1000 bytes, not 3584`,
  })
  assert.deepEqual(store.get('k'), [])
  assert.deepEqual(bodyFileNames(path), [])
  assert.equal(count(path, 'entries'), 0)
  assert.deepEqual(store.stats(), { totalBytes: 0, entryCount: 0 })
  store.close()
})

test('a body file truncated during a read: the read fails instead of ending short', linuxOnly, async () => {
  const path = newPath()
  const store = openStore(path, { chunkBytes: 64 * 1024 })
  await storeLong(store, 'k', 1)
  const entry = entryAt(store.get('k'))
  const file = bodyFileOf(path, entry.id)
  const chunks = iteratorOf(entry)
  // Cut after the size check of readBody() but before the first step: a read in flight during the cut
  // may come back whole with zeros where the cut was (the kernel does not order them), which no reader
  // can tell from a body; no read starts before the first step.
  truncateSync(file, FILE_READ_BYTES + 10)
  const read: Buffer[] = []
  const failure = await (async () => {
    for (let step = 0; step < 3; step++) {
      const next = await chunks.next().catch((error: unknown) => error as Error)
      if (next instanceof Error) return next
      assert.equal(next.done, false, 'the body must never end short')
      read.push(next.value)
    }
  })()
  assert.equal(failure?.message, `undici-cache: body file ${file} ended early`)
  const delivered = Buffer.concat(read)
  assert.equal(delivered.length, FILE_READ_BYTES)
  assert.deepEqual(delivered, patternBody(LONG_BYTES, 1).subarray(0, delivered.length))
  assert.deepEqual(openBodyFds(path), [], 'the failed read closed its descriptor')
  assert.deepEqual(await chunks.next(), { done: true, value: undefined })
  assert.throws(() => entry.readBody(), {
    message: `undici-cache: body file ${file} has ${FILE_READ_BYTES + 10} bytes, not ${LONG_BYTES}`,
  })
  assert.deepEqual(store.get('k'), [])
  store.close()
})

test(
  'a body holds a descriptor from readBody() (as its response starts) to its end or return()',
  linuxOnly,
  async () => {
    const path = newPath()
    const store = openStore(path)
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`)
    for (const [i, key] of keys.entries()) await storeBody(store, key, KEPT, patternBody(1100, i), 1100)
    const entries = keys.map((key) => entryAt(store.get(key)))

    const iterators = entries.map(iteratorOf)
    assert.equal(openBodyFds(path).length, 50, 'opened by readBody(): a replace after it cuts nothing off')

    const first = iterators[0] as AsyncIterator<Buffer>
    assert.deepEqual((await first.next()).value, patternBody(1100, 0))
    assert.equal(openBodyFds(path).length, 49, 'its last piece read: closed before the final next()')
    assert.deepEqual(await first.return?.(), { done: true, value: undefined })

    await storeLong(store, 'long', 9)
    const long = iteratorOf(entryAt(store.get('long')))
    assert.equal((await long.next()).value?.length, FILE_READ_BYTES)
    assert.equal(openBodyFds(path).length, 50)
    assert.deepEqual(await long.return?.(), { done: true, value: undefined })
    assert.equal(openBodyFds(path).length, 49, 'return() after one piece closes it')

    const steps = await Promise.all(iterators.slice(1).map((iterator) => iterator.next()))
    assert.deepEqual(
      steps.map((step) => step.value),
      keys.slice(1).map((_, i) => patternBody(1100, i + 1)),
    )
    const ends = await Promise.all(iterators.slice(1).map((iterator) => iterator.next()))
    assert.deepEqual(ends, Array(49).fill({ done: true, value: undefined }))
    assert.deepEqual(openBodyFds(path), [], 'read to the end: closed')

    const inFlight = iteratorOf(entryAt(entries, 1))
    const step = inFlight.next()
    assert.deepEqual(await inFlight.return?.(), { done: true, value: undefined })
    assert.deepEqual(await step, { done: true, value: undefined })
    assert.deepEqual(openBodyFds(path), [], 'return() during a read: closed once the read is back')

    for await (const chunk of entryAt(entries, 2).readBody()) {
      assert.equal(chunk.length, 1100)
      break
    }
    assert.deepEqual(openBodyFds(path), [], 'break out of for await: closed')
    store.close()
  },
)

test('next() called again before the last one is back reads the following piece, not the same one', async () => {
  const path = newPath()
  // the file's own reader: without the hot tier, whose hits follow one read of the file
  const store = openStore(path, { chunkBytes: 64 * 1024, hotBytes: 0 })
  await storeLong(store, 'k', 3)
  const steps = await Promise.all(Array.from({ length: 4 }, () => iteratorOf(entryAt(store.get('k'))).next()))
  assert.equal(steps.filter((step) => !step.done).length, 4, 'four iterators, one piece each')
  const chunks = iteratorOf(entryAt(store.get('k')))
  const pieces = await Promise.all([chunks.next(), chunks.next(), chunks.next(), chunks.next()])
  assert.deepEqual(
    pieces.map((step) => step.value?.length),
    [FILE_READ_BYTES, FILE_READ_BYTES, 100, undefined],
  )
  assert.deepEqual(Buffer.concat(pieces.flatMap((step) => step.value ?? [])), patternBody(LONG_BYTES, 3))
  store.close()
})

test('a store with bodyFiles: false reads and deletes body files, and writes chunk rows itself', async () => {
  const path = newPath()
  const writer = openStore(path)
  const rowsOnly = openStore(path, { bodyFiles: false })
  await storeBody(writer, 'file', KEPT, patternBody(3584, 1))
  const fileId = entryAt(writer.get('file')).id
  assert.deepEqual(bodyFileNames(path), [String(fileId)])
  assert.deepEqual(await readChunks(entryAt(rowsOnly.get('file'))), [patternBody(3584, 1)])

  await storeBody(rowsOnly, 'rows', KEPT, patternBody(3584, 2))
  assert.deepEqual(bodyFileNames(path), [String(fileId)])
  assert.equal(count(path, 'chunks'), 4)
  const rows = await readChunks(entryAt(writer.get('rows')))
  assert.deepEqual(
    rows.map((chunk) => chunk.length),
    [1024, 1024, 1024, 512],
  )
  assert.deepEqual(Buffer.concat(rows), patternBody(3584, 2))

  rowsOnly.delete('file')
  assert.deepEqual(bodyFileNames(path), [])
  assert.deepEqual(writer.get('file'), [])
  writer.close()
  rowsOnly.close()
})

test(':memory: keeps long bodies in chunk rows, whatever bodyFiles says', async () => {
  const store = new SqliteStore({ path: ':memory:', chunkBytes: 1024, bodyFiles: true })
  await storeBody(store, 'k', KEPT, patternBody(3584, 1))
  const rows = (await readChunks(entryAt(store.get('k')))) as Buffer[]
  assert.deepEqual(
    rows.map((chunk) => chunk.length),
    [1024, 1024, 1024, 512],
  )
  assert.equal(existsSync(bodyDirOf(':memory:')), false)
  store.close()
})

test("onCorrupt 'recreate' moves the body files aside with the database", async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_800_000_000_000 })
  const path = newPath()
  const first = openStore(path)
  await storeBody(first, 'k', KEPT, patternBody(3584, 1))
  const oldId = entryAt(first.get('k')).id
  first.close()
  const fd = openSync(path, 'r+')
  writeSync(fd, patternBody(100, 9), 0, 100, 0)
  closeSync(fd)

  const store = openStore(path, { onCorrupt: 'recreate' })
  const copyPath = `${path}.corrupt-1800000000000`
  assert.equal(store.failure, undefined)
  assert.equal(store.corruptCopyPath, copyPath)
  assert.deepEqual(bodyFileNames(copyPath), [String(oldId)])
  assert.deepEqual(readFileSync(bodyFileOf(copyPath, oldId)), patternBody(3584, 1))
  assert.equal(existsSync(bodyDirOf(path)), false)

  assert.deepEqual(store.get('k'), [])
  await storeBody(store, 'k', KEPT, patternBody(5000, 2))
  const entry = entryAt(store.get('k'))
  assert.equal(entry.id, oldId, 'a new file numbers its entries from 1 again')
  assert.deepEqual(bodyFileNames(path), [String(entry.id)])
  assert.deepEqual(await readBody(entry), patternBody(5000, 2))
  store.close()
})

test(
  'a body read directly or through a stream and dropped unread closes its file once garbage',
  linuxOnly,
  async () => {
    v8.setFlagsFromString('--expose-gc')
    const gc = vm.runInNewContext('gc') as () => void
    const path = newPath()
    // the file's own reader (the hot tier's load reads the file through: sqlite-hot-tier.test.ts)
    const store = openStore(path, { hotBytes: 0 })
    await storeLong(store, 'k', 1)
    const drop = () => {
      // Readable.from starts the iteration at once
      entryAt(store.get('k')).readBody()
      Readable.from(entryAt(store.get('k')).readBody())
    }
    drop()
    assert.equal(openBodyFds(path).length, 2)
    for (let tries = 0; tries < 20 && openBodyFds(path).length > 0; tries++) {
      gc()
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    assert.deepEqual(openBodyFds(path), [])
    store.close()
  },
)

test(
  'a body file that cannot be opened for a passing fault (out of descriptors) keeps its entry',
  linuxOnly,
  () => {
    const path = newPath()
    const script = `
    import { openSync } from 'node:fs'
    import { SqliteStore } from ${JSON.stringify(new URL('../../lib/stores/sqlite-store.ts', import.meta.url).href)}
    import { storeBody, sampleMeta, patternBody } from ${JSON.stringify(new URL('./helpers.ts', import.meta.url).href)}
    const store = new SqliteStore({ path: ${JSON.stringify(path)}, chunkBytes: 1024, hotBytes: 0 })
    await storeBody(store, 'k', sampleMeta({ deleteAtMs: 0 }), patternBody(5000, 1))
    const held = []
    try { for (;;) held.push(openSync('/dev/null', 'r')) } catch {}
    let failure = ''
    try { store.get('k')[0].readBody() } catch (error) { failure = error.code }
    process.stdout.write(JSON.stringify({ failure, entries: store.get('k').length }))
  `
    const output = execFileSync('bash', [
      '-c',
      'ulimit -n 64 && exec "$0" --import tsx --input-type=module -e "$1"',
      process.execPath,
      script,
    ])
    assert.deepEqual(JSON.parse(String(output)), { failure: 'EMFILE', entries: 1 })
  },
)
