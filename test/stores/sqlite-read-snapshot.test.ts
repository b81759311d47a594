import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { setImmediate as nextTurn } from 'node:timers/promises'
import Database from 'better-sqlite3'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { entryAt, patternBody, readBody, sampleMeta, storeBody } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-snapshot-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const newPath = () => join(dir, `snapshot-${files++}.db`)

/** Deletes every entry of `key` through a plain connection, as another process would. */
function deleteElsewhere(path: string, key: string): void {
  const other = new Database(path)
  other.prepare('DELETE FROM entries WHERE key = ?').run(key)
  other.close()
}

test("the reads of one turn share a snapshot: another process's commit is seen from the next turn", async () => {
  const path = newPath()
  const store = new SqliteStore({ path, hotBytes: 0, sweepIntervalMs: 0 })
  await storeBody(store, 'k', sampleMeta(), patternBody(100, 1))
  await nextTurn()
  assert.equal(store.get('k').length, 1)
  deleteElsewhere(path, 'k')
  assert.equal(store.get('k').length, 1, 'same turn: the snapshot taken by the first read')
  await nextTurn()
  assert.deepEqual(store.get('k'), [], 'next turn: a new snapshot')
  store.close()
})

test('a write by this process, through any of its stores on the file, ends the snapshot at once', async () => {
  const path = newPath()
  const store = new SqliteStore({ path, hotBytes: 0, sweepIntervalMs: 0 })
  const other = new SqliteStore({ path, hotBytes: 0, sweepIntervalMs: 0 })
  await nextTurn()
  assert.deepEqual(store.get('k'), [])
  other.put('k', sampleMeta())?.commit()
  assert.equal(store.get('k').length, 1, "another store's commit is seen in the same turn")
  store.delete('k')
  assert.deepEqual(other.get('k'), [])
  assert.deepEqual(store.get('k'), [], "this store's delete too")
  await storeBody(store, 'k', sampleMeta(), patternBody(100, 2))
  assert.deepEqual(await readBody(entryAt(other.get('k'))), patternBody(100, 2))
  store.close()
  other.close()
})
