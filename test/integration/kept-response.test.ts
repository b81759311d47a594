/**
 * A caller that keeps a response it has read (undici's body stream holds the controller it was given)
 * keeps nothing of the cache's with it: the store's reader of a hit, the writer of a miss.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { request } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { CacheStore, EntryMeta, EntryWriter, StoredEntry } from '../../lib/stores/store.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void

/** Full collections, each after the current job (a WeakRef's target lives to the end of the job). */
async function collectedAll(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    collectGarbage()
  }
}

/** MemoryStore, with every body reader and writer it hands out watched through a WeakRef. */
class WatchedStore implements CacheStore {
  readonly inner = new MemoryStore()
  readonly readers: WeakRef<object>[] = []
  readonly writers: WeakRef<object>[] = []

  get(key: string): StoredEntry[] {
    return (this.inner.get(key) as StoredEntry[]).map((entry) => ({
      ...entry,
      body: undefined,
      readBody: () => {
        const reader = (entry.readBody() as Iterable<Buffer>)[Symbol.iterator]()
        this.readers.push(new WeakRef(reader))
        return { [Symbol.iterator]: () => reader }
      },
    }))
  }

  put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined {
    const writer = this.inner.put(key, meta, expectedSizeBytes)
    if (writer) this.writers.push(new WeakRef(writer))
    return writer
  }

  update(key: string, id: StoredEntry['id'], meta: EntryMeta): void | Promise<void> {
    return this.inner.update(key, id, meta)
  }

  delete(key: string): void | Promise<void> {
    return this.inner.delete(key)
  }

  async close(): Promise<void> {
    await this.inner.close()
  }
}

let origin: Origin

before(async () => {
  origin = await startOrigin((req, res) =>
    reply(res, 200, { 'cache-control': 'max-age=60', etag: '"k"' }, `body of ${req.url}`),
  )
})
after(() => origin.close())

test('a kept response keeps neither the writer of its miss nor the reader of its hit', async () => {
  const store = new WatchedStore()
  const cache = new CacheAgent({ store })
  const url = `${origin.url}/kept`
  const kept = []
  for (const status of ['fwd=miss; stored', 'hit']) {
    const response = await request(url, { dispatcher: cache })
    assert.equal(await response.body.text(), 'body of /kept')
    assert.match(String(response.headers['cache-status']), new RegExp(`^undici-cache; ${status}`))
    kept.push(response)
  }
  assert.equal(origin.count('/kept'), 1)
  assert.equal(store.writers.length, 1)
  assert.equal(store.readers.length, 1)
  await collectedAll()
  assert.equal(store.writers[0]?.deref(), undefined, 'the miss keeps its writer')
  assert.equal(store.readers[0]?.deref(), undefined, 'the hit keeps its reader')
  assert.equal(kept.length, 2)
  await cache.close()
  await store.close()
})
