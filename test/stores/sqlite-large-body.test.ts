import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import v8 from 'node:v8'
import vm from 'node:vm'
import Database from 'better-sqlite3'
import { FILE_READ_BYTES } from '../../lib/stores/sqlite-body-files.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { bodyDirOf, bodyFileNames, bodyFileSize, entryAt, writeFromChild } from './helpers.js'

const KIB = 1024
const MIB = 1024 * KIB
const dir = mkdtempSync(join(tmpdir(), 'undici-cache-large-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** Garbage that V8 leaves for later (Node 22 let up to ~50 MiB of read chunks pile up) is collected as it goes. */
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void
const COLLECT_EVERY_BYTES = 8 * MIB

/**
 * Reads every chunk of the entry's body; its sha256, chunk count and the peak RSS growth (MiB) meanwhile,
 * with the garbage collected every COLLECT_EVERY_BYTES: what grows is what the read holds.
 */
async function readMeasured(store: SqliteStore, key: string) {
  const entry = entryAt(store.get(key))
  assert.equal(entry.sizeBytes, 64 * MIB)
  assert.equal(entry.body, undefined)
  const read = createHash('sha256')
  const rssBefore = process.memoryUsage.rss()
  let peakRss = rssBefore
  let chunks = 0
  let uncollectedBytes = 0
  for await (const chunk of entry.readBody()) {
    read.update(chunk)
    chunks += 1
    peakRss = Math.max(peakRss, process.memoryUsage.rss())
    uncollectedBytes += chunk.length
    if (uncollectedBytes >= COLLECT_EVERY_BYTES) {
      gc()
      uncollectedBytes = 0
    }
  }
  return { sha256: read.digest('hex'), chunks, growthMiB: (peakRss - rssBefore) / MIB }
}

// Written by another process, so this one's memory holds no leftovers of the write when it reads.
test('a 64 MiB body streams into 256 chunk rows and back with bounded memory (bodyFiles: false)', async () => {
  const path = join(dir, 'large-rows.db')
  const write = {
    sizeBytes: 64 * MIB,
    seed: 3,
    writeBytes: 64 * KIB,
    chunkBytes: 256 * KIB,
    bodyFiles: false,
  }
  const writtenSha256 = await writeFromChild(path, 'big', write)

  const raw = new Database(path, { readonly: true })
  const rows = raw
    .prepare('SELECT COUNT(*) AS n, MIN(length(data)) AS min, MAX(length(data)) AS max FROM chunks')
    .get()
  assert.deepEqual(rows, { n: 256, min: 256 * KIB, max: 256 * KIB })
  raw.close()
  assert.equal(existsSync(bodyDirOf(path)), false)

  const store = new SqliteStore({ path, chunkBytes: 256 * KIB })
  const { sha256, chunks, growthMiB } = await readMeasured(store, 'big')
  assert.equal(chunks, 256)
  assert.equal(sha256, writtenSha256)
  assert.ok(growthMiB < 48, `rss grew by ${growthMiB.toFixed(1)} MiB while reading`)
  store.close()
})

test('a 64 MiB body streams into one body file and back in reads of 1 MiB with bounded memory', async () => {
  const path = join(dir, 'large-file.db')
  const write = { sizeBytes: 64 * MIB, seed: 4, writeBytes: 64 * KIB, chunkBytes: 256 * KIB }
  const writtenSha256 = await writeFromChild(path, 'big', write)

  const raw = new Database(path, { readonly: true })
  const row = raw.prepare('SELECT id, body_file, body_bytes FROM entries WHERE complete = 1').get() as {
    id: number
  }
  assert.deepEqual(row, { id: row.id, body_file: 1, body_bytes: 64 * MIB })
  assert.deepEqual(raw.prepare('SELECT COUNT(*) AS n FROM chunks').get(), { n: 0 })
  raw.close()
  assert.deepEqual(bodyFileNames(path), [String(row.id)])
  assert.equal(bodyFileSize(path, row.id), 64 * MIB)

  const store = new SqliteStore({ path, chunkBytes: 256 * KIB })
  const { sha256, chunks, growthMiB } = await readMeasured(store, 'big')
  assert.equal(chunks, (64 * MIB) / FILE_READ_BYTES)
  assert.equal(sha256, writtenSha256)
  assert.ok(growthMiB < 48, `rss grew by ${growthMiB.toFixed(1)} MiB while reading`)
  store.close()
})
