import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { entryAt, patternBody, readBody, sampleMeta } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-group-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** Opens n writers with small bodies written, ready to commit. */
function writers(store: SqliteStore, n: number) {
  return Array.from({ length: n }, (_, i) => {
    const writer = store.put(`k${i}`, sampleMeta())
    assert.ok(writer?.commitSoon)
    writer.write(patternBody(100, i))
    return writer
  })
}

test('commits made in one turn share a transaction; all are visible once they resolve', async () => {
  const path = join(dir, 'group.db')
  const store = new SqliteStore({ path })
  const other = new SqliteStore({ path })
  const pending = writers(store, 20).map((writer) => writer.commitSoon?.())
  assert.equal(other.get('k0').length, 1, 'the first commit of a turn is made at once')
  assert.equal(other.get('k19').length, 0, 'the others wait for the next turn')
  await Promise.all(pending)
  for (let i = 0; i < 20; i++)
    assert.deepEqual(await readBody(entryAt(other.get(`k${i}`))), patternBody(100, i))
  store.close()
  other.close()
})

test('this process reads its own waiting commits at once', async () => {
  const store = new SqliteStore({ path: join(dir, 'own.db') })
  const pending = writers(store, 3).map((writer) => writer.commitSoon?.())
  assert.deepEqual(await readBody(entryAt(store.get('k2'))), patternBody(100, 2))
  await Promise.all(pending)
  store.close()
})

test('a write cancelled by delete() among waiting commits stores nothing; the others land', async () => {
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
