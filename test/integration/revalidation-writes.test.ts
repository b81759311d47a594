import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { CacheStore, EntryMeta, EntryWriter, StoredEntry } from '../../lib/stores/store.js'
import { makeAgent, send, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

/** A real store that counts the metadata writes a 304 causes. */
class CountingStore implements CacheStore {
  updates = 0
  readonly #inner: CacheStore

  constructor(inner: CacheStore) {
    this.#inner = inner
  }

  get(key: string) {
    return this.#inner.get(key)
  }

  put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined {
    return this.#inner.put(key, meta, expectedSizeBytes)
  }

  update(key: string, id: StoredEntry['id'], meta: EntryMeta) {
    this.updates++
    return this.#inner.update(key, id, meta)
  }

  delete(key: string) {
    return this.#inner.delete(key)
  }

  close() {
    return this.#inner.close()
  }
}

// A 304 for a no-cache response that changes nothing but its dates is not written back (lib/freshen.ts);
// any other change to a field is.
for (const kind of storeKinds) {
  describe(`304 write-back (${kind.name})`, () => {
    let origin: Origin
    let store: CountingStore
    let cache: ReturnType<typeof makeAgent>
    let notModifiedFields: Record<string, string | string[]> = {}

    before(async () => {
      origin = await startOrigin((req, res) => {
        if (req.headers['if-none-match'] === '"w"') {
          return reply(res, 304, { etag: '"w"', 'cache-control': 'no-cache', ...notModifiedFields })
        }
        reply(res, 200, { 'cache-control': 'no-cache', etag: '"w"', 'x-lines': ['a', 'b'] }, 'stored body')
      })
      store = new CountingStore(kind.make())
      cache = makeAgent(store)
    })
    after(async () => {
      await cache.close()
      await origin.close()
    })

    test('only a new Date, or the same fields again: served from the entry, nothing written', async () => {
      await send(cache.agent, `${origin.url}/same`)
      notModifiedFields = { 'x-lines': ['a', 'b'] }
      for (let round = 0; round < 3; round++) {
        const revalidated = await send(cache.agent, `${origin.url}/same`)
        assert.equal(revalidated.body, 'stored body')
        assert.equal(revalidated.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
      }
      assert.equal(store.updates, 0)
      assert.equal(origin.count('/same'), 4)
    })

    test('a changed or new field is written back and served from then on', async () => {
      await send(cache.agent, `${origin.url}/changed`)
      notModifiedFields = { 'x-lines': ['b', 'a'] }
      await send(cache.agent, `${origin.url}/changed`)
      assert.equal(store.updates, 1)
      notModifiedFields = { 'x-lines': ['b', 'a'], 'x-new': '1' }
      const added = await send(cache.agent, `${origin.url}/changed`)
      assert.equal(store.updates, 2)
      assert.deepEqual(added.headers['x-lines'], ['b', 'a'])
      assert.equal(added.headers['x-new'], '1')
      notModifiedFields = {}
      const kept = await send(cache.agent, `${origin.url}/changed`)
      assert.equal(store.updates, 2)
      assert.deepEqual(kept.headers['x-lines'], ['b', 'a'])
      assert.equal(kept.headers['x-new'], '1')
      assert.equal(kept.body, 'stored body')
    })
  })
}
