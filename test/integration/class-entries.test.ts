/** A custom store whose entries are class instances: fields behind getters, the body reader a method. */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { CacheStore, EntryMeta, EntryWriter, StoredEntry } from '../../lib/stores/store.js'
import { makeAgent, send, sleep } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

/** One stored entry, every field read through a getter from a private copy (as an ORM's row may be). */
class ClassEntry {
  readonly #entry: StoredEntry

  constructor(entry: StoredEntry) {
    this.#entry = entry
  }

  get id() {
    return this.#entry.id
  }
  get sizeBytes() {
    return this.#entry.sizeBytes
  }
  get statusCode() {
    return this.#entry.statusCode
  }
  get statusMessage() {
    return this.#entry.statusMessage
  }
  get headers() {
    return this.#entry.headers
  }
  get requestTimeMs() {
    return this.#entry.requestTimeMs
  }
  get responseTimeMs() {
    return this.#entry.responseTimeMs
  }
  get varyValues() {
    return this.#entry.varyValues
  }
  get varyKey() {
    return this.#entry.varyKey
  }
  get deleteAtMs() {
    return this.#entry.deleteAtMs
  }
  get sharedCache() {
    return this.#entry.sharedCache
  }
  get authorized() {
    return this.#entry.authorized
  }

  readBody() {
    return this.#entry.readBody()
  }
}

/** MemoryStore's semantics; get() answers ClassEntry instances. */
class ClassEntryStore implements CacheStore {
  readonly inner = new MemoryStore()

  get(key: string): StoredEntry[] {
    return (this.inner.get(key) as StoredEntry[]).map(
      (entry) => new ClassEntry(entry) as unknown as StoredEntry,
    )
  }

  put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined {
    return this.inner.put(key, meta, expectedSizeBytes)
  }

  update(key: string, id: StoredEntry['id'], meta: EntryMeta): void {
    this.inner.update(key, id, meta)
  }

  delete(key: string): void {
    this.inner.delete(key)
  }

  close(): void {
    this.inner.close()
  }
}

let origin: Origin

before(async () => {
  origin = await startOrigin((req, res) => {
    const etag = '"v1"'
    const cacheControl = req.url === '/swr' ? 'max-age=1, stale-while-revalidate=60' : 'no-cache'
    if (req.headers['if-none-match'] === etag) return reply(res, 304, { 'cache-control': cacheControl, etag })
    reply(res, 200, { 'cache-control': cacheControl, etag, 'x-kept': 'yes' }, `body of ${req.url}`)
  })
})
after(() => origin.close())

test('entries whose fields are getters are served whole after a 304 and while stale (a copy keeps them)', async () => {
  const cache = makeAgent(new ClassEntryStore())
  try {
    const url = `${origin.url}/validated`
    assert.equal((await send(cache.agent, url)).body, 'body of /validated')
    const validated = await send(cache.agent, url)
    assert.deepEqual(
      [validated.status, validated.body, validated.headers['x-kept'], validated.headers['cache-status']],
      [200, 'body of /validated', 'yes', 'undici-cache; fwd=stale; fwd-status=304'],
    )
    assert.equal(origin.count('/validated'), 2)

    const swr = `${origin.url}/swr`
    assert.equal((await send(cache.agent, swr)).body, 'body of /swr')
    await sleep(2100)
    const stale = await send(cache.agent, swr)
    assert.deepEqual([stale.status, stale.body, stale.headers['x-kept']], [200, 'body of /swr', 'yes'])
    // max-age=1 and 2.1 s later, counted from a Date in whole seconds
    assert.match(String(stale.headers['cache-status']), /^undici-cache; hit; ttl=-[123]$/)
    await sleep(200)
    assert.equal(origin.count('/swr'), 2, 'revalidated in the background')
  } finally {
    await cache.close()
  }
})
