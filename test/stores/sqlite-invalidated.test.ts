import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { INVALIDATED_KEEP_MS } from '../../lib/stores/sqlite-row-writes.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { patternBody, sampleMeta, storeBody } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-invalidated-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const newPath = () => join(dir, `invalidated-${files++}.db`)
const sentAt = (requestTimeMs: number) => sampleMeta({ requestTimeMs })

test('a response to a request sent before its key was last deleted is not committed; a later one is', async () => {
  const store = new SqliteStore({ path: newPath(), chunkBytes: 1024, bodyFiles: false })
  try {
    const beforeMs = Date.now() - 1000
    await store.delete('k')
    for (const body of [patternBody(10, 1), patternBody(5000, 2)]) {
      assert.equal(await storeBody(store, 'k', sentAt(beforeMs), body, 1024), true)
      assert.deepEqual(store.get('k'), [], `a ${body.length}-byte body`)
    }
    assert.equal(store.stats().entryCount, 0, 'the chunk rows went with the refused row')
    await storeBody(store, 'k', sentAt(Date.now()), patternBody(10, 3))
    assert.equal(store.get('k').length, 1)
    await storeBody(store, 'other', sentAt(beforeMs), patternBody(10, 4))
    assert.equal(store.get('other').length, 1, 'another key is not held back')
  } finally {
    store.close()
  }
})

test("another connection's delete keeps out a write opened before it (RFC 9111 §4.4 across processes)", async () => {
  const path = newPath()
  const writing = new SqliteStore({ path })
  const deleting = new SqliteStore({ path })
  try {
    const writer = writing.put('k', sentAt(Date.now() - 1))
    assert.ok(writer)
    await writer.write(patternBody(10, 1))
    await deleting.delete('k')
    await writer.commit()
    assert.deepEqual(writing.get('k'), [])
    assert.deepEqual(deleting.get('k'), [])
  } finally {
    writing.close()
    deleting.close()
  }
})

test(`a deletion is forgotten by the sweep ${INVALIDATED_KEEP_MS / 60_000} minutes later`, async () => {
  const store = new SqliteStore({ path: newPath(), sweepIntervalMs: 0 })
  try {
    const deletedMs = Date.now()
    await store.delete('k')
    store.sweep(deletedMs + INVALIDATED_KEEP_MS - 1000)
    await storeBody(store, 'k', sentAt(deletedMs - 1000), patternBody(10, 1))
    assert.deepEqual(store.get('k'), [], 'still remembered')
    store.sweep(deletedMs + INVALIDATED_KEEP_MS + 1000)
    await storeBody(store, 'k', sentAt(deletedMs - 1000), patternBody(10, 2))
    assert.equal(store.get('k').length, 1)
  } finally {
    store.close()
  }
})

test("another connection's delete in the request's millisecond keeps the write out; the store's own does not", async () => {
  const path = newPath()
  const writing = new SqliteStore({ path })
  const deleting = new SqliteStore({ path })
  /** Deletes `key` through `store` within one millisecond; answers that millisecond. */
  const deleteWithinOneMs = async (store: SqliteStore, key: string) => {
    for (;;) {
      const startedMs = Date.now()
      await store.delete(key)
      if (Date.now() === startedMs) return startedMs
    }
  }
  try {
    const otherMs = await deleteWithinOneMs(deleting, 'k')
    await storeBody(writing, 'k', sentAt(otherMs), patternBody(10, 1))
    assert.deepEqual(writing.get('k'), [], 'the request may have been sent just before the delete')
    const ownMs = await deleteWithinOneMs(writing, 'own')
    await storeBody(writing, 'own', sentAt(ownMs), patternBody(10, 2))
    assert.equal(
      writing.get('own').length,
      1,
      "its interceptors refuse the requests sent before the store's own delete",
    )
  } finally {
    writing.close()
    deleting.close()
  }
})
