/** A store whose promises come from another realm (a vm context, a promise library): not `instanceof Promise`. */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import vm from 'node:vm'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { CacheStore, EntryMeta, EntryWriter, StoredEntry } from '../../lib/stores/store.js'
import { makeAgent, send } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

const ForeignPromise = vm.runInNewContext('Promise') as PromiseConstructor

/** `answer` as a promise of another realm, settled on a later turn. */
function foreign<T>(answer: () => T | PromiseLike<T>): Promise<T> {
  return new ForeignPromise<T>((resolve, reject) => {
    setImmediate(() => Promise.resolve().then(answer).then(resolve, reject))
  })
}

/** MemoryStore's semantics, every answer but put's a foreign promise. */
class ForeignStore implements CacheStore {
  readonly inner = new MemoryStore()

  get(key: string): Promise<StoredEntry[]> {
    return foreign(() => this.inner.get(key))
  }

  put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined {
    const writer = this.inner.put(key, meta, expectedSizeBytes)
    if (!writer) return undefined
    return {
      write: (chunk) => foreign(() => writer.write(chunk)),
      commit: () => foreign(() => writer.commit()),
      abort: () => writer.abort(),
    }
  }

  update(key: string, id: StoredEntry['id'], meta: EntryMeta): Promise<void> {
    return foreign(() => this.inner.update(key, id, meta))
  }

  delete(key: string): Promise<void> {
    return foreign(() => this.inner.delete(key))
  }

  close(): Promise<void> {
    return foreign(() => this.inner.close())
  }
}

let origin: Origin
let failing = false

before(async () => {
  origin = await startOrigin((req, res) => {
    if (failing) return reply(res, 503, {}, 'down')
    if (req.method === 'POST') return reply(res, 204, {})
    const etag = '"v1"'
    const cacheControl = req.url === '/fresh' ? 'max-age=60' : 'max-age=0, stale-if-error=60'
    if (req.headers['if-none-match'] === etag) return reply(res, 304, { 'cache-control': 'max-age=60', etag })
    reply(res, 200, { 'cache-control': cacheControl, etag }, `body of ${req.url}`)
  })
})
after(() => origin.close())

test('a store answering with promises of another realm: stored, served, revalidated, invalidated, and served stale when the origin fails', async () => {
  const cache = makeAgent(new ForeignStore())
  try {
    const url = `${origin.url}/foreign`
    const first = await send(cache.agent, url)
    assert.deepEqual(
      [first.body, first.headers['cache-status']],
      ['body of /foreign', 'undici-cache; fwd=miss; stored'],
    )
    const validated = await send(cache.agent, url)
    assert.deepEqual(
      [validated.body, validated.headers['cache-status']],
      ['body of /foreign', 'undici-cache; fwd=stale; fwd-status=304'],
    )
    const hit = await send(cache.agent, url)
    assert.equal(hit.body, 'body of /foreign')
    assert.match(String(hit.headers['cache-status']), /^undici-cache; hit; ttl=(58|59|60)$/)
    assert.equal(origin.count('/foreign'), 2)

    assert.equal((await send(cache.agent, url, { method: 'POST' })).status, 204)
    const afterWrite = await send(cache.agent, url)
    assert.deepEqual(
      [afterWrite.body, afterWrite.headers['cache-status']],
      ['body of /foreign', 'undici-cache; fwd=miss; stored'],
    )
    assert.equal(origin.count('/foreign'), 4)

    failing = true
    const stale = await send(cache.agent, url)
    assert.deepEqual(
      [stale.status, stale.body, stale.headers['cache-status']],
      [200, 'body of /foreign', 'undici-cache; fwd=stale; fwd-status=503; detail=stale-if-error-503'],
    )
    assert.equal(origin.count('/foreign'), 5)
  } finally {
    failing = false
    await cache.close()
  }
})
