/**
 * RFC 9111 §3, §4.3.4: a background revalidation whose 304 makes its response unstorable removes that
 * response, and only that one: a newer response stored meanwhile under the key stays. The stale
 * response served meanwhile is read whole first.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { StoredEntry } from '../../lib/stores/store.js'
import { send, sleep, storeKinds, tempDir } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

const STALE_AT_ONCE = 'max-age=0, stale-while-revalidate=30'

for (const kind of storeKinds) {
  describe(`a background revalidation's unstorable 304 (${kind.name})`, () => {
    let origin: Origin

    before(async () => {
      origin = await startOrigin((req, res) => {
        res.sendDate = false
        if (req.headers['x-newer'])
          return reply(res, 200, { 'cache-control': 'max-age=60', etag: '"v2"' }, 'newer body')
        if (req.headers['if-none-match'] === '"v1"')
          return setTimeout(() => reply(res, 304, { etag: '"v1"', 'cache-control': 'no-store' }), 150)
        reply(res, 200, { 'cache-control': STALE_AT_ONCE, etag: '"v1"' }, 'first body')
      })
    })
    after(() => origin.close())

    test('removes the response it validated, not a newer one stored meanwhile', async () => {
      const store = kind.make()
      const stale = new CacheAgent({ store })
      const other = new CacheAgent({ store })
      const url = `${origin.url}/swr-no-store`
      assert.equal((await send(stale, url)).headers['cache-status'], 'undici-cache; fwd=miss; stored')
      const served = await send(stale, url)
      assert.equal(served.body, 'first body')
      assert.match(String(served.headers['cache-status']), /^undici-cache; hit; ttl=(0|-[0-9]+)$/)
      // while the background revalidation waits for its 304, another client stores a newer response
      const newer = await send(other, url, { headers: { 'cache-control': 'no-cache', 'x-newer': '1' } })
      assert.equal(newer.body, 'newer body')
      assert.equal(newer.headers['cache-status'], 'undici-cache; fwd=stale; stored')
      await sleep(300)
      assert.equal(origin.count('/swr-no-store'), 3)
      assert.equal(origin.requests.filter((seen) => seen.headers['if-none-match'] === '"v1"').length, 2)
      const after = await send(stale, url)
      assert.equal(after.body, 'newer body')
      assert.match(String(after.headers['cache-status']), /^undici-cache; hit; ttl=(58|59|60)$/)
      assert.equal(origin.count('/swr-no-store'), 3)
      await stale.close()
      await other.close()
      await store.close()
    })
  })
}

test('the stale hit whose background 304 says no-store is read whole first (SqliteStore, chunk rows)', async () => {
  const body = Buffer.alloc(2 * 1024 * 1024, 'r')
  const lastModified = new Date(Date.now() - 3_600_000).toUTCString()
  const origin = await startOrigin((req, res) => {
    if (req.headers['if-modified-since'])
      return reply(res, 304, { 'last-modified': lastModified, 'cache-control': 'no-store' })
    res.writeHead(200, { 'cache-control': STALE_AT_ONCE, 'last-modified': lastModified })
    res.end(body)
  })
  const store = new SqliteStore({ path: join(tempDir(), 'rows.db'), bodyFiles: false })
  const cache = new CacheAgent({ store })
  const url = `${origin.url}/rows`
  assert.equal((await send(cache, url)).headers['cache-status'], 'undici-cache; fwd=miss; stored')
  const stale = await request(url, { dispatcher: cache })
  assert.match(String(stale.headers['cache-status']), /^undici-cache; hit; ttl=(0|-[0-9]+)$/)
  let readBytes = 0
  for await (const chunk of stale.body as AsyncIterable<Buffer>) {
    assert.ok(chunk.equals(body.subarray(readBytes, readBytes + chunk.length)))
    readBytes += chunk.length
    await sleep(2)
  }
  assert.equal(readBytes, body.length)
  assert.deepEqual(
    origin.requests.map((seen) => seen.headers['if-modified-since'] !== undefined),
    [false, true],
  )
  await sleep(50)
  const again = await send(cache, url)
  assert.equal(again.headers['cache-status'], 'undici-cache; fwd=miss; stored')
  assert.equal(origin.count('/rows'), 3)
  await cache.close()
  await store.close()
  await origin.close()
})

/** MemoryStore whose next body read fails to open (a file gone, say), counting deletions. */
class FailingOpenStore extends MemoryStore {
  failNextOpen = false
  deletions = 0

  override get(key: string): StoredEntry[] {
    return super.get(key).map((entry) => ({
      ...entry,
      body: undefined,
      readBody: () => {
        if (!this.failNextOpen) return entry.readBody()
        this.failNextOpen = false
        throw new Error('body cannot be opened')
      },
    }))
  }

  override delete(key: string): void {
    this.deletions++
    super.delete(key)
  }
}

test('a stale hit whose body cannot be opened does not hold up the removal its background 304 asks for', async () => {
  const origin = await startOrigin((req, res) => {
    if (req.headers['if-none-match'] === '"o1"')
      return reply(res, 304, { etag: '"o1"', 'cache-control': 'no-store' })
    reply(res, 200, { 'cache-control': STALE_AT_ONCE, etag: '"o1"' }, 'opened body')
  })
  const store = new FailingOpenStore()
  const cache = new CacheAgent({ store })
  const url = `${origin.url}/cannot-open`
  assert.equal((await send(cache, url)).headers['cache-status'], 'undici-cache; fwd=miss; stored')
  store.failNextOpen = true
  const failed = await send(cache, url)
  assert.equal(failed.body, 'opened body')
  await sleep(50)
  assert.equal(store.deletions, 1)
  assert.deepEqual(
    origin.requests.map((seen) => seen.headers['if-none-match']),
    [undefined, '"o1"', undefined],
  )
  await cache.close()
  await store.close()
  await origin.close()
})
