import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import Database from 'better-sqlite3'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { entryAt, writeFromChild } from './helpers.js'

const KIB = 1024
const MIB = 1024 * KIB
const dir = mkdtempSync(join(tmpdir(), 'undici-cache-large-'))
after(() => rmSync(dir, { recursive: true, force: true }))

// Written by another process, so this one's memory holds no leftovers of the write when it reads.
test('a 64 MiB body streams into 256 chunk rows and back with bounded memory', async () => {
  const path = join(dir, 'large.db')
  const write = { sizeBytes: 64 * MIB, seed: 3, writeBytes: 64 * KIB, chunkBytes: 256 * KIB }
  const writtenSha256 = await writeFromChild(path, 'big', write)

  const raw = new Database(path, { readonly: true })
  const rows = raw
    .prepare('SELECT COUNT(*) AS n, MIN(length(data)) AS min, MAX(length(data)) AS max FROM chunks')
    .get()
  assert.deepEqual(rows, { n: 256, min: 256 * KIB, max: 256 * KIB })
  raw.close()

  const store = new SqliteStore({ path, chunkBytes: 256 * KIB })
  const entry = entryAt(store.get('big'))
  assert.equal(entry.sizeBytes, 64 * MIB)
  assert.equal(entry.body, undefined)
  const read = createHash('sha256')
  const rssBefore = process.memoryUsage.rss()
  let peakRss = rssBefore
  let chunks = 0
  for (const chunk of entry.readBody() as Iterable<Buffer>) {
    read.update(chunk)
    chunks += 1
    peakRss = Math.max(peakRss, process.memoryUsage.rss())
  }
  assert.equal(chunks, 256)
  assert.equal(read.digest('hex'), writtenSha256)
  const growthMiB = (peakRss - rssBefore) / MIB
  assert.ok(growthMiB < 48, `rss grew by ${growthMiB.toFixed(1)} MiB while reading`)
  store.close()
})
