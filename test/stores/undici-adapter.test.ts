/** toUndiciStore: every store of this package under undici 7's own cache interceptor. */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { Agent, type Dispatcher, interceptors, request } from 'undici'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { RedisStore } from '../../lib/stores/redis-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { CacheStore } from '../../lib/stores/store.js'
import {
  toUndiciStore,
  UNDICI_VALUE_HEADER,
  type UndiciCacheStore,
} from '../../lib/stores/undici-store-adapter.js'
import { send, sleep, tempDir } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'
import { patternBody, sampleMeta, storeBody } from './helpers.js'
import { type RedisServer, redisSkipReason, startRedisServer } from './redis-server.js'

type UndiciKey = Parameters<UndiciCacheStore['get']>[0]
type UndiciValue = Parameters<UndiciCacheStore['createWriteStream']>[1]

const LARGE_BODY = patternBody(300_000, 5).toString('base64')
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

let origin: Origin
let slowVersion = 0
before(async () => {
  if (redisSkip === undefined) redis = await startRedisServer()
  origin = await startOrigin((req, res, seen) => {
    const url = new URL(seen.url, 'http://x')
    if (url.pathname === '/vary') {
      const language = req.headers['accept-language'] ?? 'none'
      return reply(res, 200, { 'cache-control': 'max-age=60', vary: 'accept-language' }, `lang ${language}`)
    }
    if (url.pathname === '/large') return reply(res, 200, { 'cache-control': 'max-age=60' }, LARGE_BODY)
    if (url.pathname === '/etag') {
      if (req.headers['if-none-match'] === '"v1"') return reply(res, 304, { etag: '"v1"' })
      return reply(res, 200, { 'cache-control': 'no-cache', etag: '"v1"' }, LARGE_BODY)
    }
    if (url.pathname === '/slow-etag') {
      // a 304 held 200 ms; any other method answers at once
      const headers = { 'cache-control': 'no-cache', etag: '"v1"' }
      if (req.headers['if-none-match'] === '"v1"') return setTimeout(() => reply(res, 304, headers), 200)
      return reply(res, 200, headers, req.method === 'GET' ? LARGE_BODY : 'written')
    }
    if (url.pathname === '/slow-get') {
      if (req.method !== 'GET') {
        slowVersion += 1
        return reply(res, 200, {}, 'written')
      }
      const answered = slowVersion
      return setTimeout(() => reply(res, 200, { 'cache-control': 'max-age=60' }, `v${answered}`), 200)
    }
    if (url.pathname === '/large-vary') {
      const language = String(req.headers['accept-language'] ?? 'none')
      // de is private: undici deletes under the GET key on such an answer
      const cacheControl = language === 'de' ? 'private' : 'max-age=60'
      const headers = { 'cache-control': cacheControl, vary: 'accept-language' }
      return reply(res, 200, headers, req.method === 'GET' ? `${language} ${LARGE_BODY}` : 'written')
    }
    if (url.pathname === '/held-304') {
      // a 304 that makes the revalidated variant stale at once: undici deletes the entry on it
      const language = String(req.headers['accept-language'] ?? 'none')
      const headers = { etag: '"e"', vary: 'accept-language' }
      if (req.headers['if-none-match'] === '"e"')
        return reply(res, 304, { ...headers, 'cache-control': 'max-age=0' })
      return reply(res, 200, { ...headers, 'cache-control': 'max-age=60' }, `${language} ${LARGE_BODY}`)
    }
    if (url.pathname === '/etag-cache-control') {
      const headers = { 'cache-control': 'no-cache', etag: '"v1"' }
      if (req.headers['if-none-match'] === '"v1"') return reply(res, 304, headers)
      return reply(res, 200, headers, LARGE_BODY)
    }
    reply(res, 200, { 'cache-control': 'max-age=60' }, `${seen.method} ${seen.url}`)
  })
})
after(async () => {
  await origin.close()
  await redis?.stop()
})

/** undici's own cache interceptor over `store`, on a fresh Agent. */
function undiciCache(store: CacheStore) {
  const agent = new Agent()
  const adapter = toUndiciStore(store)
  const dispatcher: Dispatcher = agent.compose(interceptors.cache({ store: adapter }))
  return {
    dispatcher,
    store,
    /** Sends a request and waits until the store shows its effect: undici does not wait for async stores. */
    sendAndSettle: async (
      target: string,
      options: { method?: string; headers?: Record<string, string> } = {},
    ) => {
      const { method = 'GET', headers = {} } = options
      const response = await send(dispatcher, origin.url + target, { method, headers })
      const key = { origin: origin.url, method: 'GET', path: target, headers }
      // after a write, until the store itself has no entry left (the adapter hides them at once)
      const gone = async () => (await store.get(`undici ${origin.url}${target}`)).length === 0
      const stored = async () => {
        const found = await adapter.get(key)
        // the body of a lookup made only to look: closed, as undici closes every body it is given
        if (found?.body instanceof Readable) found.body.destroy()
        return found !== undefined
      }
      const settled = method === 'GET' ? stored : gone
      for (let tries = 0; !(await settled()); tries++) {
        if (tries === 200) throw new Error(`${method} ${target} did not settle in the store`)
        await sleep(5)
      }
      return response
    },
    /** A GET that revalidates (`no-cache`): its body is left unread, as a hit still being read. */
    revalidateUnread: (target: string, headers: Record<string, string>) =>
      request(origin.url + target, { dispatcher, headers: { ...headers, 'cache-control': 'no-cache' } }),
    close: async () => {
      await agent.close()
      await store.close()
    },
  }
}

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

test('a body file gone when undici looks the entry up makes a miss, not a failed request', async () => {
  const file = path.join(tempDir(), 'cache.db')
  const cache = undiciCache(new SqliteStore({ path: file, chunkBytes: 1024 }))
  const target = '/large?suite=gone'
  await cache.sendAndSettle(target)
  for (const name of fs.readdirSync(`${file}-bodies`)) fs.rmSync(path.join(`${file}-bodies`, name))
  const again = await send(cache.dispatcher, origin.url + target)
  assert.deepEqual([again.status, again.body], [200, LARGE_BODY])
  assert.equal(origin.count(target), 2)
  await cache.close()
})

/** Writes one value and body through the adapter, resolved once the store has committed it. */
function writeValue(adapter: UndiciCacheStore, key: UndiciKey, value: UndiciValue, body: string) {
  const stream = adapter.createWriteStream(key, value)
  assert.ok(stream)
  return new Promise((resolve, reject) => {
    stream.on('error', reject).on('finish', resolve).end(Buffer.from(body))
  })
}

test('the adapter keeps undici values intact and picks by method, Vary and deleteAt', async () => {
  const store = new MemoryStore()
  const adapter = toUndiciStore(store)
  const key = { origin: 'http://127.0.0.1:1', method: 'GET', path: '/x', headers: { accept: 'text/html' } }
  const nowMs = Date.now()
  const value = {
    statusCode: 200,
    statusMessage: 'OK',
    headers: { 'content-type': 'text/html', 'content-length': '5', [UNDICI_VALUE_HEADER]: 'forged' },
    vary: { accept: 'text/html', 'accept-language': null },
    etag: '"e"',
    cacheControlDirectives: { 'max-age': 60 },
    cachedAt: nowMs,
    staleAt: nowMs + 60_000,
    deleteAt: nowMs + 120_000,
  }
  await writeValue(adapter, key, value, 'hello')
  const { body, ...found } = (await adapter.get(key)) ?? {}
  assert.deepEqual(found, { ...value, headers: { 'content-type': 'text/html', 'content-length': '5' } })
  assert.deepEqual(body, [Buffer.from('hello')])
  assert.equal(await adapter.get({ ...key, method: 'HEAD' }), undefined)
  assert.equal(await adapter.get({ ...key, headers: { accept: 'text/plain' } }), undefined)
  assert.equal(
    await adapter.get({ ...key, headers: { accept: 'text/html', 'accept-language': 'en' } }),
    undefined,
  )
  await writeValue(adapter, key, { ...value, deleteAt: nowMs - 1 }, 'stale')
  assert.equal(await adapter.get(key), undefined, 'past deleteAt')
  // undici drops a body it is handed for an entry past deleteAt as it looks, without closing it
  await writeValue(adapter, key, { ...value, deleteAt: Date.now() + 50 }, 'nearly')
  assert.equal(await adapter.get(key), undefined, 'within 100 ms of deleteAt')
  await writeValue(adapter, key, { ...value, deleteAt: Date.now() + 1000 }, 'short')
  assert.ok(await adapter.get(key), 'a second from deleteAt')
  await adapter.delete(key)
  await storeBody(
    store,
    `undici ${key.origin}${key.path}`,
    sampleMeta({ headers: { [UNDICI_VALUE_HEADER]: '{' } }),
    Buffer.from('x'),
  )
  await storeBody(store, `undici ${key.origin}${key.path}`, sampleMeta({ varyKey: 'own' }), Buffer.from('x'))
  assert.equal(await adapter.get(key), undefined, 'entries without a readable undici value are never served')
})

test('a body of another length than its entry says fails the response through the adapter, never short or long', async () => {
  for (const [name, cut] of [
    ['short', (body: Buffer) => body.subarray(0, body.length - 100)],
    ['long', (body: Buffer) => Buffer.concat([body, Buffer.alloc(100)])],
  ] as const) {
    const memory = new MemoryStore()
    const lying: CacheStore = {
      get: (key) =>
        memory.get(key).map((entry) => {
          const body = cut(entry.body ?? Buffer.alloc(0))
          return { ...entry, body: undefined, readBody: () => [body] }
        }),
      put: (key, meta, sizeBytes) => memory.put(key, meta, sizeBytes),
      update: (key, id, meta) => memory.update(key, id, meta),
      delete: (key) => memory.delete(key),
      close: () => memory.close(),
    }
    const cache = undiciCache(lying)
    const target = `/lying-${name}`
    await cache.sendAndSettle(target)
    const hit = await request(origin.url + target, { dispatcher: cache.dispatcher })
    await assert.rejects(hit.body.text(), /the stored body of \d+ bytes read/)
    await cache.close()
  }
})

test('what undici deletes after a 304 while its body is read is expired in the store: another adapter on the file does not serve it', async () => {
  const file = path.join(tempDir(), 'held.db')
  const first = undiciCache(new SqliteStore({ path: file, hotBytes: 0 }))
  const target = '/held-304?suite=two-adapters'
  const de = { 'accept-language': 'de' }
  await first.sendAndSettle(target, { headers: de })
  const held = await first.revalidateUnread(target, de)
  // another variant written while the body is open: the delete that waits for it is not needed then
  await first.sendAndSettle(target, { headers: { 'accept-language': 'fr' } })
  assert.equal(await held.body.text(), `de ${LARGE_BODY}`)
  const second = undiciCache(new SqliteStore({ path: file, hotBytes: 0 }))
  const before = origin.count(target)
  assert.equal((await send(second.dispatcher, origin.url + target, { headers: de })).body, `de ${LARGE_BODY}`)
  assert.equal(origin.count(target), before + 1)
  // a delete held for a body still being read leaves what another adapter stored since
  const heldAgain = await first.revalidateUnread(target, de)
  await send(second.dispatcher, origin.url + target, { headers: de })
  assert.equal(await heldAgain.body.text(), `de ${LARGE_BODY}`)
  await sleep(50)
  const stored = origin.count(target)
  assert.equal((await send(second.dispatcher, origin.url + target, { headers: de })).body, `de ${LARGE_BODY}`)
  assert.equal(origin.count(target), stored, 'served from the store: the held delete left it')
  await first.close()
  await second.close()
})

test("undici's delete after a 304, held for a body in chunk rows: a sweep meanwhile does not cut that body", async () => {
  const file = path.join(tempDir(), 'held-rows.db')
  const store = new SqliteStore({
    path: file,
    hotBytes: 0,
    bodyFiles: false,
    chunkBytes: 4096,
    sweepIntervalMs: 0,
  })
  const cache = undiciCache(store)
  const target = '/held-304?suite=rows'
  const de = { 'accept-language': 'de' }
  await cache.sendAndSettle(target, { headers: de })
  const held = await cache.revalidateUnread(target, de)
  store.sweep()
  assert.equal(await held.body.text(), `de ${LARGE_BODY}`)
  await cache.close()
})

test('a response to a request whose lookup was forgotten (10 000 other URLs since) is not stored after an invalidation', async () => {
  const adapter = toUndiciStore(new MemoryStore())
  const key = { origin: 'http://127.0.0.1:1', method: 'GET', path: '/forgotten' }
  const value = {
    statusCode: 200,
    statusMessage: 'OK',
    headers: {},
    cachedAt: 1,
    staleAt: 2,
    deleteAt: Date.now() + 60_000,
  }
  await adapter.get(key)
  await sleep(2)
  await adapter.delete({ ...key, method: 'POST' })
  for (let i = 0; i < 10_001; i++) await adapter.get({ ...key, path: `/other-${i}` })
  assert.equal(adapter.createWriteStream(key, value), undefined)
  // a lookup made since counts: that request was sent after the invalidation
  await sleep(2)
  await adapter.get(key)
  await writeValue(adapter, key, value, 'after')
})

for (const failing of ['update', 'get'] as const)
  test(`undici's delete held after a 304 is made when marking the entry deleted fails (${failing}), even with another variant written meanwhile`, async () => {
    const sqlite = new SqliteStore({ path: path.join(tempDir(), `marks-${failing}.db`), hotBytes: 0 })
    /** Gets counted from when armed: the marking's is the second (after the revalidation's lookup). */
    let getsArmed: number | undefined
    const faulty: CacheStore = {
      get: (key) => {
        if (getsArmed !== undefined && ++getsArmed === 2 && failing === 'get') throw new Error('get failed')
        return sqlite.get(key)
      },
      put: (key, meta, sizeBytes) => sqlite.put(key, meta, sizeBytes),
      update: (key, id, meta) => {
        if (failing === 'update') throw new Error('update failed')
        sqlite.update(key, id, meta)
      },
      delete: (key) => sqlite.delete(key),
      close: () => sqlite.close(),
    }
    const cache = undiciCache(faulty)
    const target = `/held-304?suite=marks-${failing}`
    const de = { 'accept-language': 'de' }
    await cache.sendAndSettle(target, { headers: de })
    getsArmed = 0
    const held = await cache.revalidateUnread(target, de)
    getsArmed = undefined
    await cache.sendAndSettle(target, { headers: { 'accept-language': 'fr' } })
    assert.equal(await held.body.text(), `de ${LARGE_BODY}`)
    const deStored = () =>
      sqlite
        .get(`undici ${origin.url}${target}`)
        .filter((entry) => entry.varyValues['accept-language'] === 'de')
    for (let tries = 0; deStored().length > 0; tries++) {
      if (tries === 100) assert.fail('the entry undici deleted is still stored')
      await sleep(10)
    }
    await cache.close()
  })

test('the newest matching entry, within 100 ms of its deleteAt, makes a miss: an older match is not served instead', async () => {
  const adapter = toUndiciStore(new MemoryStore())
  const key = { origin: 'http://127.0.0.1:1', method: 'GET', path: '/newest', headers: { accept: 'a' } }
  const nowMs = Date.now()
  const value = {
    statusCode: 200,
    statusMessage: 'OK',
    headers: {},
    cachedAt: nowMs,
    staleAt: nowMs + 1,
    deleteAt: nowMs + 3_600_000,
  }
  await writeValue(adapter, key, value, 'older')
  await writeValue(adapter, key, { ...value, vary: { accept: 'a' }, deleteAt: Date.now() + 50 }, 'newer')
  assert.equal(await adapter.get(key), undefined)
})

test('a failing store never fails a request through the adapter', async () => {
  const failing: CacheStore = {
    get: async () => Promise.reject(new Error('get failed')),
    put: () => ({
      write: () => {
        throw new Error('write failed')
      },
      commit: () => {},
      abort: () => {},
    }),
    update: () => {},
    delete: async () => Promise.reject(new Error('delete failed')),
    close: () => {},
  }
  const cache = undiciCache(failing)
  const target = '/failing'
  for (const method of ['GET', 'GET', 'POST', 'GET']) {
    const response = await send(cache.dispatcher, origin.url + target, { method })
    assert.deepEqual([response.status, response.body], [200, `${method} ${target}`])
  }
  assert.equal(origin.count(target), 4)
  const throwing = toUndiciStore({ ...failing, put: () => assert.fail('put failed') })
  const value = { statusCode: 200, statusMessage: 'OK', headers: {}, cachedAt: 1, staleAt: 2, deleteAt: 3 }
  const key = { origin: origin.url, method: 'GET', path: '/' }
  assert.equal(throwing.createWriteStream(key, value), undefined)
  const commitFails = toUndiciStore({
    ...failing,
    put: () => ({
      write: async () => {},
      commit: async () => Promise.reject(new Error('commit failed')),
      abort: () => {},
    }),
  })
  await assert.rejects(writeValue(commitFails, key, value, 'body'), /commit failed/)
  await cache.close()
})

test("through undici's interceptor, a response whose request started before another connection's invalidation is not stored", async () => {
  let version = 0
  let releaseHeaders: () => void = () => {}
  const held = new Promise<void>((resolve) => {
    releaseHeaders = resolve
  })
  const slow = await startOrigin(async (req, res) => {
    if (req.method === 'POST') {
      version += 1
      return reply(res, 204, {})
    }
    const answered = version
    if (req.headers['x-hold'] === '1') await held
    reply(res, 200, { 'cache-control': 'max-age=600' }, `v${answered}`)
  })
  const file = path.join(tempDir(), 'cache.db')
  const [storeA, storeB] = [new SqliteStore({ path: file }), new SqliteStore({ path: file })]
  const agentA = new Agent()
  const agentB = new Agent()
  const viaA = agentA.compose(interceptors.cache({ store: toUndiciStore(storeA) }))
  const viaB = agentB.compose(interceptors.cache({ store: toUndiciStore(storeB) }))
  try {
    const first = send(viaA, `${slow.url}/doc`, { headers: { 'x-hold': '1' } })
    await sleep(50)
    await send(viaB, `${slow.url}/doc`, { method: 'POST' })
    releaseHeaders()
    assert.equal((await first).body, 'v0')
    await sleep(50)
    const again = await send(viaA, `${slow.url}/doc`)
    assert.equal(again.body, 'v1')
    assert.equal(slow.count('/doc'), 3)
  } finally {
    await agentA.close()
    await agentB.close()
    storeA.close()
    storeB.close()
    await slow.close()
  }
})
