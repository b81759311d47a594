import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { CacheStore, EntryMeta, EntryWriter, StoredEntry } from '../../lib/stores/store.js'
import { makeAgent, send, storeKinds, tempDir } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'
import { patternBody } from '../stores/helpers.js'

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

/** Stores whose bodies are not in memory: a body file, and chunk rows (read in turns of 1 MiB). */
const bodyOutsideMemory = [
  { name: 'body file', options: {} },
  { name: 'chunk rows', options: { bodyFiles: false } },
]

// The entry is written back (or removed) while its body is still being served: the caller must get
// the stored body whole either way.
for (const { name, options } of bodyOutsideMemory) {
  describe(`a 304 whose write-back grows or removes the entry (SqliteStore, ${name})`, () => {
    const body = patternBody(3 * 1024 * 1024, 8)
    let origin: Origin
    let store: SqliteStore
    let replacedOnce = 0
    let cache: ReturnType<typeof makeAgent>

    before(async () => {
      origin = await startOrigin((req, res) => {
        const notModified = { etag: '"b"', 'cache-control': 'max-age=0' }
        if (req.url?.startsWith('/no-store') && req.headers['if-none-match'])
          return reply(res, 304, { ...notModified, 'cache-control': 'no-store' })
        // after its 304 with no-store the entry is served to nobody else: the next request is plain
        if (req.url === '/replaced' && (req.headers['if-none-match'] || replacedOnce > 0))
          return replacedOnce++ === 0
            ? reply(res, 304, { ...notModified, 'cache-control': 'no-store' })
            : reply(res, 200, { etag: '"b2"', 'cache-control': 'max-age=600' }, 'newer')
        if (req.url === '/grows' && req.headers['if-none-match'])
          return reply(res, 304, { ...notModified, 'x-pad': 'p'.repeat(8000) })
        reply(res, 200, notModified, body as unknown as string)
      })
      const path = join(tempDir(), 'grow.db')
      store = new SqliteStore({ path, maxBytes: body.length + 4000, hotBytes: 0, ...options })
      cache = makeAgent(store)
    })
    after(async () => {
      await cache.close()
      await origin.close()
    })

    const get = async (url: string) => {
      const res = await request(url, { dispatcher: cache.agent })
      return { headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) }
    }

    test('a 304 with no-store serves the stored body whole, then removes the entry', async () => {
      await get(`${origin.url}/no-store`)
      const revalidated = await get(`${origin.url}/no-store`)
      assert.equal(revalidated.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
      assert.ok(revalidated.body.equals(body))
      assert.deepEqual(store.stats(), { totalBytes: 0, entryCount: 0 })
      assert.equal(origin.count('/no-store'), 2)
    })

    test('a caller that pauses as the 304 with no-store starts still gets the body whole', async () => {
      const url = new URL(`${origin.url}/no-store-paused`)
      await get(url.href)
      const received = await new Promise<number | Error>((resolve) => {
        let bytes = 0
        cache.agent.dispatch(
          { origin: url.origin, path: url.pathname, method: 'GET', headers: {} },
          {
            onRequestStart() {},
            onResponseStart(controller) {
              controller.pause()
              setTimeout(() => controller.resume(), 20)
            },
            onResponseData(_controller, chunk) {
              bytes += chunk.length
            },
            onResponseEnd: () => resolve(bytes),
            onResponseError: (_controller, error) => resolve(error),
          },
        )
      })
      assert.equal(received, body.length)
      assert.deepEqual(store.stats(), { totalBytes: 0, entryCount: 0 })
    })

    test('a Range served after a 304 with no-store, aborted before its first byte, still removes the entry', async () => {
      const url = new URL(`${origin.url}/no-store-range`)
      await get(url.href)
      const outcome = await new Promise<string>((resolve) => {
        cache.agent.dispatch(
          { origin: url.origin, path: url.pathname, method: 'GET', headers: { range: 'bytes=100-199' } },
          {
            onRequestStart() {},
            onResponseStart(controller, statusCode) {
              controller.abort(new Error(`gave up on a ${statusCode}`))
            },
            onResponseEnd: () => resolve('end'),
            onResponseError: (_controller, error) => resolve(error.message),
          },
        )
      })
      assert.equal(outcome, 'gave up on a 206')
      await new Promise((wait) => setTimeout(wait, 20))
      assert.deepEqual(store.stats(), { totalBytes: 0, entryCount: 0 })
    })

    if (name === 'body file') {
      test('the entry a 304 with no-store leaves is removed after its read, unless replaced meanwhile', async () => {
        const url = new URL(`${origin.url}/replaced`)
        await get(url.href)
        let resume: (() => void) | undefined
        const first = new Promise<number | Error>((resolve) => {
          let bytes = 0
          cache.agent.dispatch(
            { origin: url.origin, path: url.pathname, method: 'GET', headers: {} },
            {
              onRequestStart() {},
              onResponseData(controller, chunk) {
                bytes += chunk.length
                if (resume === undefined) {
                  controller.pause()
                  resume = () => controller.resume()
                }
              },
              onResponseEnd: () => resolve(bytes),
              onResponseError: (_controller, error) => resolve(error),
            },
          )
        })
        while (resume === undefined) await new Promise((wait) => setTimeout(wait, 5))
        const newer = await get(url.href)
        assert.equal(newer.body.toString(), 'newer')
        resume()
        assert.equal(await first, body.length)
        const hit = await get(url.href)
        assert.match(String(hit.headers['cache-status']), /^undici-cache; hit/)
        assert.equal(hit.body.toString(), 'newer')
        assert.equal(origin.count('/replaced'), 3)
      })
    }

    test('a 304 that takes the entry alone past maxBytes serves it whole, keeps it and evicts nothing', async () => {
      await get(`${origin.url}/grows`)
      const before = store.stats()
      const revalidated = await get(`${origin.url}/grows`)
      assert.equal(revalidated.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
      assert.equal(revalidated.headers['x-pad'], 'p'.repeat(8000))
      assert.ok(revalidated.body.equals(body))
      // the entry keeps the metadata it had: with the 304's it would be too big alone
      assert.deepEqual(store.stats(), before)
      assert.equal(origin.count('/grows'), 2)
    })
  })
}

// A store may refuse a 304's write-back (metadata too big for maxBytes): the entry keeps its old
// headers, but the requests that waited on that revalidation are served what the 304 validated.
for (const kind of [
  { name: 'MemoryStore', make: () => new MemoryStore({ maxBytes: 3000 }) },
  { name: 'SqliteStore', make: () => new SqliteStore({ path: join(tempDir(), 'small.db'), maxBytes: 3000 }) },
]) {
  test(`requests waiting on a revalidation whose write-back the store refuses get the 304's headers (${kind.name})`, async () => {
    const big = 'q'.repeat(1600)
    const origin = await startOrigin((req, res) => {
      if (req.headers['if-none-match'] === '"x"') {
        setTimeout(() => reply(res, 304, { etag: '"x"', 'cache-control': 'max-age=100', 'x-big': big }), 100)
        return
      }
      reply(res, 200, { etag: '"x"', 'cache-control': 'max-age=1' }, 'b'.repeat(1500))
    })
    const cache = makeAgent(kind.make())
    try {
      const url = `${origin.url}/refused`
      await send(cache.agent, url)
      await new Promise((resolve) => setTimeout(resolve, 2100)) // stale now
      const replies = await Promise.all([0, 1, 2, 3].map(() => send(cache.agent, url)))
      assert.equal(origin.count('/refused'), 2)
      for (const reply of replies) {
        assert.equal(reply.body, 'b'.repeat(1500))
        assert.equal(reply.headers['cache-control'], 'max-age=100')
        assert.equal(reply.headers['x-big'], big)
        // the 304's Date is to the second: a busy machine may cross one before it is served
        assert.match(String(reply.headers.age), /^[01]$/)
        assert.equal(reply.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304; collapsed')
      }
      // not written back: the entry is still the stale one, so the next request revalidates again
      const again = await send(cache.agent, url)
      assert.equal(again.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
      assert.equal(origin.count('/refused'), 3)
    } finally {
      await cache.close()
      await origin.close()
    }
  })
}
