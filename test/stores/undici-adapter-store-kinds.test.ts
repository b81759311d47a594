/** toUndiciStore: every store of this package under undici 7's own cache interceptor, one suite each. */
import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { RedisStore } from '../../lib/stores/redis-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { CacheStore } from '../../lib/stores/store.js'
import { UNDICI_VALUE_HEADER } from '../../lib/stores/undici-store-adapter.js'
import { send, sleep, tempDir } from '../helpers/client.js'
import { type RedisServer, redisSkipReason, startRedisServer } from './redis-server.js'
import { LARGE_BODY, origin, slowVersion, startAdapterOrigin, undiciCache } from './undici-adapter-setup.js'

const redisSkip = redisSkipReason()
let redis: RedisServer | undefined
let redisPrefixes = 0

const storeKinds: { name: string; slug: string; make: () => CacheStore; skip?: string }[] = [
  { name: 'MemoryStore', slug: 'memory', make: () => new MemoryStore() },
  {
    name: 'SqliteStore (file)',
    slug: 'sqlite',
    make: () => new SqliteStore({ path: path.join(tempDir(), 'cache.db'), chunkBytes: 1024 }),
  },
  {
    name: 'RedisStore',
    slug: 'redis',
    make: () =>
      new RedisStore({
        url: (redis as RedisServer).url,
        keyPrefix: `adapter:${redisPrefixes++}:`,
        chunkBytes: 1024,
      }),
    skip: redisSkip,
  },
]

before(async () => {
  if (redisSkip === undefined) redis = await startRedisServer()
  await startAdapterOrigin()
})
after(async () => {
  await origin.close()
  await redis?.stop()
})

for (const kind of storeKinds) {
  describe(`undici's cache interceptor on ${kind.name}`, { skip: kind.skip ?? false }, () => {
    let cache: ReturnType<typeof undiciCache>
    let paths = 0
    /** A path of this suite only, so counts are exact. */
    const fresh = (name: string) => `/${name}?suite=${kind.slug}&n=${paths++}`
    before(() => {
      cache = undiciCache(kind.make())
    })
    after(() => cache.close())

    test('a fresh response is served from the store', async () => {
      const target = fresh('hit')
      const first = await cache.sendAndSettle(target)
      const second = await send(cache.dispatcher, origin.url + target)
      assert.deepEqual([first.body, second.body], [`GET ${target}`, `GET ${target}`])
      assert.equal(second.headers[UNDICI_VALUE_HEADER], undefined)
      assert.equal(origin.count(target), 1)
    })

    test('Vary selects the variant', async () => {
      const target = `/vary?suite=${kind.slug}`
      const bodies: string[] = []
      for (const [i, language] of ['en', 'fr', '', 'en', 'fr', ''].entries()) {
        const headers: Record<string, string> = language ? { 'accept-language': language } : {}
        const response =
          i < 3
            ? await cache.sendAndSettle(target, { headers })
            : await send(cache.dispatcher, origin.url + target, { headers })
        bodies.push(response.body)
      }
      assert.deepEqual(bodies, ['lang en', 'lang fr', 'lang none', 'lang en', 'lang fr', 'lang none'])
      assert.equal(origin.count(target), 3)
    })

    test('a POST to the URL invalidates it', async () => {
      const target = fresh('post')
      await cache.sendAndSettle(target)
      await send(cache.dispatcher, origin.url + target)
      assert.equal((await cache.sendAndSettle(target, { method: 'POST' })).body, `POST ${target}`)
      assert.equal((await cache.sendAndSettle(target)).body, `GET ${target}`)
      await send(cache.dispatcher, origin.url + target)
      assert.equal(origin.count(target), 3)
    })

    test('a POST invalidates at once, while a hit of the URL is still being read (RFC 9111 §4.4)', async () => {
      const target = `/large?suite=${kind.slug}&invalidated`
      await cache.sendAndSettle(target)
      const held = await request(origin.url + target, { dispatcher: cache.dispatcher })
      assert.equal((await send(cache.dispatcher, origin.url + target, { method: 'POST' })).status, 200)
      const after = await send(cache.dispatcher, origin.url + target)
      assert.equal(after.body, LARGE_BODY)
      assert.deepEqual(
        origin.requests.filter((seen) => seen.url === target).map((seen) => seen.method),
        ['GET', 'POST', 'GET'],
      )
      assert.equal(await held.body.text(), LARGE_BODY)
    })

    test('a revalidation under way when a POST invalidates the URL still gets the whole body its 304 validated', async () => {
      const target = `/slow-etag?suite=${kind.slug}`
      await cache.sendAndSettle(target)
      const revalidating = send(cache.dispatcher, origin.url + target)
      await sleep(50)
      assert.equal((await send(cache.dispatcher, origin.url + target, { method: 'POST' })).body, 'written')
      const revalidated = await revalidating
      assert.deepEqual([revalidated.status, revalidated.body], [200, LARGE_BODY])
    })

    test('a response to a GET sent before a POST and answered after it is not stored (RFC 9111 §4.4)', async () => {
      const target = `/slow-get?suite=${kind.slug}`
      const earlier = send(cache.dispatcher, origin.url + target)
      await sleep(50)
      await send(cache.dispatcher, origin.url + target, { method: 'POST' })
      const version = slowVersion
      assert.equal((await earlier).body, `v${version - 1}`)
      await sleep(50)
      assert.equal((await send(cache.dispatcher, origin.url + target)).body, `v${version}`)
    })

    test("an invalidation's delete, waiting for a hit being read, is not undone by a write under the URL", async () => {
      const target = `/large-vary?suite=${kind.slug}`
      const en = { 'accept-language': 'en' }
      await cache.sendAndSettle(target, { headers: en })
      const held = await request(origin.url + target, { dispatcher: cache.dispatcher, headers: en })
      assert.equal((await send(cache.dispatcher, origin.url + target, { method: 'POST' })).body, 'written')
      // then undici's delete of a private answer, and another variant stored: neither undoes it
      await send(cache.dispatcher, origin.url + target, { headers: { 'accept-language': 'de' } })
      await cache.sendAndSettle(target, { headers: { 'accept-language': 'fr' } })
      assert.equal(await held.body.text(), `en ${LARGE_BODY}`)
      const storedEn = async () =>
        (await cache.store.get(`undici ${origin.url}${target}`)).filter(
          (entry) => entry.varyValues['accept-language'] === 'en',
        ).length
      for (let tries = 0; (await storedEn()) > 0; tries++) {
        if (tries === 100) assert.fail('the invalidated variant is still stored')
        await sleep(10)
      }
    })

    test("undici's delete after a 304 holds while the body is read, and another variant written meanwhile does not bring the stale one back", async () => {
      const target = `/held-304?suite=${kind.slug}`
      const de = { 'accept-language': 'de' }
      const fr = { 'accept-language': 'fr' }
      await cache.sendAndSettle(target, { headers: de })
      const held = await cache.revalidateUnread(target, de)
      await cache.sendAndSettle(target, { headers: fr })
      assert.equal(await held.body.text(), `de ${LARGE_BODY}`)
      const again = await send(cache.dispatcher, origin.url + target, { headers: de })
      assert.equal(again.body, `de ${LARGE_BODY}`)
      assert.equal(
        (await send(cache.dispatcher, origin.url + target, { headers: fr })).body,
        `fr ${LARGE_BODY}`,
      )
      const sent = origin.requests.filter((seen) => seen.url === target)
      // de, its revalidation, fr, then de again from the origin (the 304 said max-age=0); fr from the store
      assert.deepEqual(
        sent.map((seen) => [seen.headers['accept-language'], seen.headers['if-none-match']]),
        [
          ['de', undefined],
          ['de', '"e"'],
          ['fr', undefined],
          ['de', undefined],
        ],
      )
    })

    test('a large body is streamed back from the store whole', async () => {
      const target = `/large?suite=${kind.slug}`
      await cache.sendAndSettle(target)
      const hit = await send(cache.dispatcher, origin.url + target)
      assert.equal(hit.body, LARGE_BODY)
      assert.equal(origin.count(target), 1)
    })

    test('a 304 revalidation serves the stored body', async () => {
      const target = `/etag?suite=${kind.slug}`
      const first = await cache.sendAndSettle(target)
      const revalidated = await send(cache.dispatcher, origin.url + target)
      assert.deepEqual([first.status, revalidated.status], [200, 200])
      assert.equal(revalidated.body, LARGE_BODY)
      assert.deepEqual(
        origin.requests.filter((seen) => seen.url === target).map((seen) => seen.headers['if-none-match']),
        [undefined, '"v1"'],
      )
    })

    test('a 304 with Cache-Control, on which undici deletes the entry, still serves the stored body whole', async () => {
      const target = `/etag-cache-control?suite=${kind.slug}`
      await cache.sendAndSettle(target)
      const revalidated = await send(cache.dispatcher, origin.url + target)
      assert.deepEqual([revalidated.status, revalidated.body], [200, LARGE_BODY])
      assert.deepEqual(
        origin.requests.filter((seen) => seen.url === target).map((seen) => seen.headers['if-none-match']),
        [undefined, '"v1"'],
      )
    })
  })
}
