/**
 * close() waits for the store calls a request leaves behind (a 304's write-back, a removal, an
 * invalidation), so the store can be closed next: an asynchronous store answers them later.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { EntryMeta, StoredEntry } from '../../lib/stores/store.js'
import { AsyncStore } from '../helpers/async-store.js'
import { send, sleep } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

/** AsyncStore, slower to update and delete (20 ms), that notes when each is done. */
class NotingStore extends AsyncStore {
  readonly done: string[] = []

  override async update(key: string, id: StoredEntry['id'], meta: EntryMeta): Promise<void> {
    await sleep(20)
    await super.update(key, id, meta)
    this.done.push('update')
  }

  override async delete(key: string): Promise<void> {
    await sleep(20)
    await super.delete(key)
    this.done.push('delete')
  }
}

let origin: Origin
before(async () => {
  origin = await startOrigin((req, res) => {
    if (req.method === 'POST') return reply(res, 204, {})
    if (req.headers['if-none-match'] === '"c1"') {
      const cacheControl = req.url === '/no-store-304' ? 'no-store' : 'max-age=0'
      return reply(res, 304, { etag: '"c1"', 'cache-control': cacheControl, 'x-version': '2' })
    }
    reply(res, 200, { etag: '"c1"', 'cache-control': 'max-age=0', 'x-version': '1' }, `body of ${req.url}`)
  })
})
after(() => origin.close())

for (const [path, method, expected] of [
  ['/written-back', 'GET', 'update'],
  ['/no-store-304', 'GET', 'delete'],
  ['/invalidated', 'POST', 'delete'],
] as const) {
  test(`close() resolves after the ${expected} a ${method} to ${path} left behind`, async () => {
    const store = new NotingStore(new MemoryStore())
    const cache = new CacheAgent({ store })
    const url = `${origin.url}${path}`
    assert.equal((await send(cache, url)).headers['cache-status'], 'undici-cache; fwd=miss; stored')
    const last = await send(cache, url, { method })
    assert.equal(last.body, method === 'GET' ? `body of ${path}` : '')
    await cache.close()
    assert.deepEqual(store.done, [expected])
    await store.close()
  })
}
