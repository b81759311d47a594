import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { makeAgent, send, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

const ETAG = '"e1"'
/** Every path's 200: stored, and validated before every use (RFC 9111 §5.2.2.4). */
const OK_HEADERS = { 'cache-control': 'no-cache', etag: ETAG, 'x-version': 'old' }
const REVALIDATED = 'undici-cache; fwd=stale; fwd-status=304'
const MISS_STORED = 'undici-cache; fwd=miss; stored'
const HIT = /^undici-cache; hit; ttl=(58|59|60)$/
/** A path's body; one with `big` is a body file in SqliteStore, removed only once read. */
const bodyOf = (path: string) => `body of ${path}`.padEnd(path.includes('big') ? 300 * 1024 : 0, '.')

for (const kind of storeKinds) {
  describe(`what a 304 may change in the store (${kind.name})`, () => {
    let origin: Origin
    /** The fields the next 304 for a path carries besides its ETag; tests change them between requests. */
    const notModified = new Map<string, Record<string, string>>()

    before(async () => {
      origin = await startOrigin((req, res) => {
        const path = req.url ?? '/'
        if (req.headers['if-none-match'] === ETAG)
          return reply(res, 304, { etag: ETAG, ...notModified.get(path) })
        reply(res, 200, OK_HEADERS, bodyOf(path))
      })
    })
    after(() => origin.close())

    /** A cache over a fresh store that holds `path`'s 200 (one origin request so far). */
    async function cacheHolding(path: string, shared: boolean) {
      const cache = makeAgent(kind.make(), { shared })
      const first = await send(cache.agent, `${origin.url}${path}`)
      assert.equal(first.headers['cache-status'], MISS_STORED)
      assert.equal(origin.count(path), 1)
      return cache
    }

    /** The If-None-Match of the last request that reached the origin. */
    const lastCondition = () => origin.requests.at(-1)?.headers['if-none-match']

    /** Sends `path` with `cache`; checks the stored body was served after a 304 built from the new fields. */
    async function revalidate(
      cache: ReturnType<typeof makeAgent>,
      path: string,
      count: number,
      headers?: Record<string, string>,
    ) {
      const res = await send(cache.agent, `${origin.url}${path}`, { headers })
      assert.equal(res.status, 200)
      assert.equal(res.body, bodyOf(path))
      assert.equal(res.headers['cache-status'], REVALIDATED)
      assert.equal(origin.count(path), count)
      assert.equal(lastCondition(), ETAG)
      return res
    }

    /** Sends `path`; checks the entry was gone: an unconditional request, whose 200 is stored again. */
    async function expectMiss(cache: ReturnType<typeof makeAgent>, path: string, count: number) {
      const res = await send(cache.agent, `${origin.url}${path}`)
      assert.equal(res.headers['cache-status'], MISS_STORED)
      assert.equal(res.body, bodyOf(path))
      assert.equal(res.headers['x-version'], 'old')
      assert.equal(origin.count(path), count)
      assert.equal(lastCondition(), undefined)
    }

    // RFC 9111 §3.2 with §3 and §5.2.2.5: the freshened response may not be stored, so it is removed
    for (const path of ['/no-store-304', '/no-store-304-big']) {
      test(`a 304 with Cache-Control: no-store deletes the stored response (${path})`, async () => {
        notModified.set(path, { 'cache-control': 'no-store', 'x-version': 'new' })
        const cache = await cacheHolding(path, true)
        try {
          const revalidated = await revalidate(cache, path, 2)
          assert.equal(revalidated.headers['cache-control'], 'no-store')
          assert.equal(revalidated.headers['x-version'], 'new')
          await expectMiss(cache, path, 3)
        } finally {
          await cache.close()
        }
      })
    }

    // RFC 9111 §3.2 with §3 and §5.2.2.7: a shared cache may not store a private response
    test('a 304 with private deletes the stored response in a shared cache', async () => {
      const path = '/private-304?shared'
      notModified.set(path, { 'cache-control': 'private, max-age=60' })
      const cache = await cacheHolding(path, true)
      try {
        const revalidated = await revalidate(cache, path, 2)
        assert.equal(revalidated.headers['cache-control'], 'private, max-age=60')
        await expectMiss(cache, path, 3)
      } finally {
        await cache.close()
      }
    })

    // RFC 9111 §4.3.4: a private cache may store it, so the 304 freshens the entry
    test('a 304 with private freshens the stored response in a private cache', async () => {
      const path = '/private-304?private'
      notModified.set(path, { 'cache-control': 'private, max-age=60' })
      const cache = await cacheHolding(path, false)
      try {
        await revalidate(cache, path, 2)
        const hit = await send(cache.agent, `${origin.url}${path}`)
        assert.match(String(hit.headers['cache-status']), HIT)
        assert.equal(hit.headers['cache-control'], 'private, max-age=60')
        assert.equal(hit.body, bodyOf(path))
        assert.equal(origin.count(path), 2)
      } finally {
        await cache.close()
      }
    })

    // RFC 9111 §7.3: the Set-Cookie goes to the user who revalidated; a shared cache never keeps it
    for (const shared of [true, false]) {
      const mode = shared ? 'shared' : 'private'
      const kept = shared ? undefined : 'session=s1'
      const stored = shared ? 'is not stored: a later hit has none' : 'is stored: a later hit has it'
      test(`a Set-Cookie on a 304 reaches its request and ${stored} (${mode} cache)`, async () => {
        const path = `/cookie-freshens?${mode}`
        notModified.set(path, { 'cache-control': 'max-age=60', 'set-cookie': 'session=s1' })
        const cache = await cacheHolding(path, shared)
        try {
          const revalidated = await revalidate(cache, path, 2)
          assert.equal(revalidated.headers['set-cookie'], 'session=s1')
          const hit = await send(cache.agent, `${origin.url}${path}`)
          assert.match(String(hit.headers['cache-status']), HIT)
          assert.equal(hit.headers['set-cookie'], kept)
          assert.equal(origin.count(path), 2)
        } finally {
          await cache.close()
        }
      })

      const again = shared ? 'not served again' : 'served again'
      test(`a Set-Cookie on a 304 is ${again} after a later 304 without one (${mode} cache)`, async () => {
        const path = `/cookie-revalidates?${mode}`
        notModified.set(path, { 'set-cookie': 'session=s1' })
        const cache = await cacheHolding(path, shared)
        try {
          const revalidated = await revalidate(cache, path, 2)
          assert.equal(revalidated.headers['set-cookie'], 'session=s1')
          notModified.set(path, {})
          const next = await revalidate(cache, path, 3)
          assert.equal(next.headers['set-cookie'], kept)
        } finally {
          await cache.close()
        }
      })
    }

    // RFC 9111 §5.2.1.5: a stored response may answer a no-store request, which changes nothing stored
    const noStoreCases = [
      [
        'is answered from the freshened fields but updates nothing stored',
        '/no-store-request-updates',
        'max-age=60',
      ],
      ['whose 304 says no-store deletes nothing stored', '/no-store-request-deletes', 'no-store'],
    ] as const
    for (const [name, path, cacheControl] of noStoreCases) {
      test(`a no-store request ${name}`, async () => {
        const cache = await cacheHolding(path, true)
        try {
          notModified.set(path, { 'cache-control': cacheControl, 'x-version': 'new' })
          const mine = await revalidate(cache, path, 2, { 'cache-control': 'no-store' })
          assert.equal(mine.headers['x-version'], 'new')
          assert.equal(mine.headers['cache-control'], cacheControl)
          // neither made fresh nor deleted: the next request still revalidates, and sees the old fields
          notModified.set(path, {})
          const next = await revalidate(cache, path, 3)
          assert.equal(next.headers['x-version'], 'old')
          assert.equal(next.headers['cache-control'], 'no-cache')
        } finally {
          await cache.close()
        }
      })
    }
  })
}
