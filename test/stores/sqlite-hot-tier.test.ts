import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { OTHER_PROCESS_CHECK_MS } from '../../lib/stores/sqlite-hot-tier.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { entryAt, patternBody, readBody, sampleMeta, storeBody, writeFromChild } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-hot-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const newPath = () => join(dir, `hot-${files++}.db`)

test('repeated hits are served from memory: the same frozen entry, no copy', async () => {
  const store = new SqliteStore({ path: newPath() })
  await storeBody(store, 'k', sampleMeta(), patternBody(100, 1))
  const first = entryAt(store.get('k'))
  const second = entryAt(store.get('k'))
  assert.equal(second, first)
  assert.ok(Object.isFrozen(first.headers))
  assert.throws(() => {
    first.headers['x-changed'] = 'yes'
  }, TypeError)
  assert.deepEqual(await readBody(second), patternBody(100, 1))
  store.close()
})

test("another process's commit empties it (SQLite data_version)", async () => {
  const path = newPath()
  const reader = new SqliteStore({ path })
  const writer = new SqliteStore({ path })
  await storeBody(writer, 'k', sampleMeta(), patternBody(100, 1))
  assert.deepEqual(await readBody(entryAt(reader.get('k'))), patternBody(100, 1))
  await storeBody(writer, 'k', sampleMeta(), patternBody(100, 2))
  assert.deepEqual(await readBody(entryAt(reader.get('k'))), patternBody(100, 2))
  writer.delete('k')
  assert.deepEqual(reader.get('k'), [])
  reader.close()
  writer.close()
})

test("another process's commit is seen by the next hit OTHER_PROCESS_CHECK_MS later", async () => {
  const path = newPath()
  const reader = new SqliteStore({ path })
  await storeBody(reader, 'k', sampleMeta({ varyKey: 'child' }), patternBody(100, 1))
  const before = entryAt(reader.get('k'))
  assert.equal(entryAt(reader.get('k')), before, 'served from memory')
  await writeFromChild(path, 'k', { sizeBytes: 100, seed: 2, writeBytes: 100, chunkBytes: 1024 })
  await sleep(OTHER_PROCESS_CHECK_MS)
  assert.deepEqual(await readBody(entryAt(reader.get('k'))), patternBody(100, 2))
  reader.close()
})

test("this process's own writes forget the key they touch", async () => {
  const store = new SqliteStore({ path: newPath() })
  await storeBody(store, 'k', sampleMeta(), patternBody(100, 1))
  const before = entryAt(store.get('k'))
  store.update('k', before.id, sampleMeta({ statusMessage: 'Updated' }))
  assert.equal(entryAt(store.get('k')).statusMessage, 'Updated')
  await storeBody(store, 'k', sampleMeta(), patternBody(100, 3))
  assert.deepEqual(await readBody(entryAt(store.get('k'))), patternBody(100, 3))
  store.delete('k')
  assert.deepEqual(store.get('k'), [])
  store.close()
})

test('only inline bodies are kept, within hotBytes; hotBytes: 0 turns it off', async () => {
  const chunked = new SqliteStore({ path: newPath(), chunkBytes: 1024 })
  await storeBody(chunked, 'big', sampleMeta(), patternBody(4096, 1))
  assert.notEqual(entryAt(chunked.get('big')), entryAt(chunked.get('big')))
  chunked.close()
  const off = new SqliteStore({ path: newPath(), hotBytes: 0 })
  await storeBody(off, 'k', sampleMeta(), patternBody(100, 1))
  assert.notEqual(entryAt(off.get('k')), entryAt(off.get('k')))
  off.close()
  const tiny = new SqliteStore({ path: newPath(), hotBytes: 16 * 1024 })
  await storeBody(tiny, 'a', sampleMeta(), patternBody(100, 1))
  await storeBody(tiny, 'b', sampleMeta(), patternBody(2000, 2))
  assert.equal(entryAt(tiny.get('a')), entryAt(tiny.get('a')))
  assert.notEqual(entryAt(tiny.get('b')), entryAt(tiny.get('b')))
  tiny.close()
  assert.throws(() => new SqliteStore({ path: newPath(), hotBytes: -1 }), {
    name: 'RangeError',
    message: /hotBytes/,
  })
})
