import assert from 'node:assert/strict'
import diagnosticsChannel from 'node:diagnostics_channel'
import { after, before, describe, test } from 'node:test'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { makeAgent, send, sleep, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin, twoMinutesAgo } from '../helpers/origin.js'

for (const kind of storeKinds) {
  describe(`stale-while-revalidate and stale-if-error (${kind.name})`, () => {
    let origin: Origin
    let cache: ReturnType<typeof makeAgent>
    let failWith = 0

    before(async () => {
      origin = await startOrigin((req, res) => {
        // Without Date, ages are exact (a Date has one-second resolution): lifetimes of 1 s stay testable.
        res.sendDate = false
        const path = req.url ?? '/'
        const conditional = req.headers['if-none-match'] === '"s"'
        if (failWith && req.headers['if-none-match'])
          return reply(res, failWith, { 'cache-control': 'no-store' }, 'down')
        const cacheControl: Record<string, string> = {
          '/swr': 'max-age=1, stale-while-revalidate=30',
          '/sie': 'max-age=1, stale-if-error=30',
          '/sie-strict': 'max-age=1, stale-if-error=30, must-revalidate',
          '/swr0': 'max-age=0, stale-while-revalidate=2',
          '/swr-sie': 'max-age=1, stale-while-revalidate=30, stale-if-error=30',
        }
        const headers = { 'cache-control': cacheControl[path] ?? 'max-age=1', etag: '"s"' }
        if (conditional) return setTimeout(() => reply(res, 304, headers), 50)
        reply(res, 200, headers, `stale test ${path}`)
      })
      cache = makeAgent(kind.make())
    })
    after(async () => {
      await cache.close()
      await origin.close()
    })

    test('inside the stale-while-revalidate window: served stale at once, one background revalidation', async () => {
      await send(cache.agent, `${origin.url}/swr`)
      await sleep(1100)
      const replies = await Promise.all(
        Array.from({ length: 20 }, () => send(cache.agent, `${origin.url}/swr`)),
      )
      for (const r of replies) {
        assert.equal(r.body, 'stale test /swr')
        assert.match(String(r.headers['cache-status']), /^undici-cache; hit; ttl=-[0-9]+$/)
      }
      await sleep(150)
      assert.equal(origin.count('/swr'), 2)
      assert.equal(origin.requests.at(-1)?.headers['if-none-match'], '"s"')
      const fresh = await send(cache.agent, `${origin.url}/swr`)
      assert.match(String(fresh.headers['cache-status']), /^undici-cache; hit; ttl=[01]$/)
      assert.equal(origin.count('/swr'), 2)
    })

    test('a background 304 restarts the stale-while-revalidate window (the entry is freshened)', async () => {
      await send(cache.agent, `${origin.url}/swr0`)
      await sleep(1500)
      const first = await send(cache.agent, `${origin.url}/swr0`)
      assert.match(String(first.headers['cache-status']), /^undici-cache; hit; ttl=-[0-9]+$/)
      await sleep(1500)
      const second = await send(cache.agent, `${origin.url}/swr0`)
      assert.match(String(second.headers['cache-status']), /^undici-cache; hit; ttl=-[0-9]+$/)
      assert.equal(second.body, 'stale test /swr0')
      await sleep(100)
      assert.equal(origin.count('/swr0'), 3)
    })

    test('a failed background revalidation is published on the diagnostics channel, never to a caller', async () => {
      const published: unknown[] = []
      const listener = (message: unknown) => published.push(message)
      diagnosticsChannel.subscribe('undici-cache:revalidation-error', listener)
      await sleep(1100)
      failWith = 500
      const stale = await send(cache.agent, `${origin.url}/swr`)
      await sleep(100)
      failWith = 0
      diagnosticsChannel.unsubscribe('undici-cache:revalidation-error', listener)
      assert.equal(stale.status, 200)
      assert.equal(stale.body, 'stale test /swr')
      assert.equal(published.length, 1)
      assert.equal(origin.count('/swr'), 3)
    })

    test('a failed background revalidation is published also inside a stale-if-error window', async () => {
      await send(cache.agent, `${origin.url}/swr-sie`)
      const published: unknown[] = []
      const listener = (message: unknown) => published.push(message)
      diagnosticsChannel.subscribe('undici-cache:revalidation-error', listener)
      await sleep(1100)
      failWith = 503
      const stale = await send(cache.agent, `${origin.url}/swr-sie`)
      await sleep(100)
      failWith = 0
      diagnosticsChannel.unsubscribe('undici-cache:revalidation-error', listener)
      assert.equal(stale.body, 'stale test /swr-sie')
      assert.match(String(stale.headers['cache-status']), /^undici-cache; hit; ttl=-[0-9]+$/)
      assert.deepEqual(
        published.map((message) => (message as { key: string }).key),
        [`${origin.url}/swr-sie`],
      )
      assert.equal(origin.count('/swr-sie'), 2)
    })

    test('stale-if-error serves the stored response on 500, 502, 503 and 504 inside the window', async () => {
      await send(cache.agent, `${origin.url}/sie`)
      await send(cache.agent, `${origin.url}/sie-strict`)
      await sleep(1100)
      for (const status of [500, 502, 503, 504]) {
        failWith = status
        const r = await send(cache.agent, `${origin.url}/sie`)
        assert.equal(r.status, 200)
        assert.equal(r.body, 'stale test /sie')
        assert.equal(
          r.headers['cache-status'],
          `undici-cache; fwd=stale; fwd-status=${status}; detail=stale-if-error-${status}`,
        )
      }
      const strict = await send(cache.agent, `${origin.url}/sie-strict`)
      failWith = 0
      assert.equal(strict.status, 504)
      assert.equal(strict.body, 'down')
      assert.equal(origin.count('/sie'), 5)
    })
  })
}

describe('stale-if-error on connection errors', () => {
  test('a refused connection serves the stale entry inside the window, and the error outside it', async () => {
    const origin = await startOrigin((_req, res) =>
      reply(res, 200, { 'cache-control': 'max-age=1, stale-if-error=2', etag: '"c"' }, 'kept'),
    )
    const cache = makeAgent(new MemoryStore())
    await send(cache.agent, `${origin.url}/gone`)
    await origin.close()
    await sleep(1100)
    const stale = await send(cache.agent, `${origin.url}/gone`)
    assert.equal(stale.body, 'kept')
    assert.equal(stale.headers['cache-status'], 'undici-cache; fwd=stale; detail=stale-if-error-econnrefused')
    const withRequestWindow = await send(cache.agent, `${origin.url}/gone`, {
      headers: { 'cache-control': 'stale-if-error=60' },
    })
    assert.equal(withRequestWindow.body, 'kept')
    await sleep(2100)
    await assert.rejects(send(cache.agent, `${origin.url}/gone`), { code: 'ECONNREFUSED' })
    await cache.close()
  })
})

for (const kind of storeKinds) {
  describe(`stale-if-error with requests waiting on the revalidation (${kind.name})`, () => {
    const failing = { mode: '' as '' | '503' | 'reset' | 'cut' }
    let origin: Origin
    let cache: ReturnType<typeof makeAgent>

    before(async () => {
      origin = await startOrigin((req, res) => {
        // stale on arrival, revalidated for several requests at once (see twoMinutesAgo)
        const headers = {
          'cache-control': 'max-age=60, stale-if-error=600',
          etag: '"w"',
          date: twoMinutesAgo(),
        }
        if (!req.headers['if-none-match']) return reply(res, 200, headers, `kept ${req.url}`)
        // slow enough that the other requests join the revalidation before it fails
        setTimeout(() => {
          if (failing.mode === 'reset') return res.socket?.destroy()
          if (failing.mode !== 'cut') return reply(res, 503, {}, 'down')
          res.writeHead(503, { 'content-length': '100' })
          res.write('only ten b')
          setTimeout(() => res.socket?.destroy(), 20)
        }, 100)
      })
      cache = makeAgent(kind.make())
    })
    after(async () => {
      await cache.close()
      await origin.close()
    })

    /** Stores `path`, then sends four identical requests at once while the origin fails. */
    async function fourAtOnce(path: string, mode: '503' | 'reset' | 'cut', headers?: Record<string, string>) {
      await send(cache.agent, `${origin.url}${path}`)
      failing.mode = mode
      const leader = send(cache.agent, `${origin.url}${path}`)
      await sleep(10)
      const waiters = [1, 2, 3].map(() => send(cache.agent, `${origin.url}${path}`, { headers }))
      return Promise.all([leader, ...waiters])
    }

    test('a 5xx: one conditional request; every waiter is served the stale entry, collapsed', async () => {
      const [leader, ...waiters] = await fourAtOnce('/five', '503')
      assert.equal(leader?.body, 'kept /five')
      assert.equal(
        leader?.headers['cache-status'],
        'undici-cache; fwd=stale; fwd-status=503; collapsed; detail=stale-if-error-503',
      )
      for (const waiter of waiters) {
        assert.equal(waiter.status, 200)
        assert.equal(waiter.body, 'kept /five')
        assert.equal(
          waiter.headers['cache-status'],
          'undici-cache; fwd=stale; fwd-status=503; collapsed; detail=stale-if-error-503',
        )
      }
      assert.equal(origin.count('/five'), 2)
    })

    test('a connection error: one conditional request; every waiter is served the stale entry', async () => {
      const [leader, ...waiters] = await fourAtOnce('/reset', 'reset')
      assert.equal(leader?.body, 'kept /reset')
      const detail = String(leader?.headers['cache-status']).replace(
        /^undici-cache; fwd=stale; collapsed; detail=/,
        '',
      )
      assert.match(detail, /^stale-if-error-[a-z_]+$/)
      for (const waiter of waiters) {
        assert.equal(waiter.body, 'kept /reset')
        assert.equal(waiter.headers['cache-status'], `undici-cache; fwd=stale; collapsed; detail=${detail}`)
      }
      assert.equal(origin.count('/reset'), 2)
    })

    test('an entry rewritten meanwhile to forbid stale responses (a HEAD 304): the waiters ask the origin', async (t) => {
      const head = await startOrigin((req, res) => {
        if (!req.headers['if-none-match'])
          return reply(
            res,
            200,
            { 'cache-control': 'max-age=60, stale-if-error=600', etag: '"h"', date: twoMinutesAgo() },
            'kept',
          )
        if (req.method === 'HEAD')
          return reply(res, 304, { 'cache-control': 'max-age=0, must-revalidate', etag: '"h"' })
        setTimeout(() => reply(res, 503, {}, 'down'), 100)
      })
      const own = makeAgent(kind.make())
      t.after(async () => {
        await own.close()
        await head.close()
      })
      await send(own.agent, `${head.url}/h`)
      const leader = send(own.agent, `${head.url}/h`)
      await sleep(10)
      const waiters = [send(own.agent, `${head.url}/h`), send(own.agent, `${head.url}/h`)]
      await sleep(10)
      // RFC 9111 §4.2.4: the HEAD's 304 freshens the stored entry with must-revalidate while the GETs wait
      assert.equal((await send(own.agent, `${head.url}/h`, { method: 'HEAD' })).status, 200)
      assert.equal((await leader).body, 'kept')
      for (const waiter of await Promise.all(waiters)) {
        assert.equal(waiter.status, 503)
        assert.equal(waiter.body, 'down')
      }
      assert.equal(head.count('/h'), 5)
    })

    test('the URL invalidated by a POST meanwhile: the error goes through; the waiter finds nothing stored', async () => {
      await send(cache.agent, `${origin.url}/posted`)
      failing.mode = '503'
      const leader = send(cache.agent, `${origin.url}/posted`)
      await sleep(10)
      const waiter = send(cache.agent, `${origin.url}/posted`)
      await sleep(10)
      assert.equal((await send(cache.agent, `${origin.url}/posted`, { method: 'POST' })).status, 200)
      assert.equal((await leader).status, 503)
      assert.equal((await leader).body, 'down')
      // nothing stored is left: the waiter's own request is unconditional (and this origin answers those)
      assert.equal((await waiter).body, 'kept /posted')
      assert.equal((await waiter).headers['cache-status'], 'undici-cache; fwd=miss; stored')
      assert.equal(origin.count('/posted'), 4)
    })

    test('a 5xx whose body is cut short: the stale entry is still served, to everyone', async () => {
      const [leader, ...waiters] = await fourAtOnce('/cut', 'cut')
      for (const reply of [leader, ...waiters]) assert.equal(reply?.body, 'kept /cut')
      assert.equal(
        leader?.headers['cache-status'],
        'undici-cache; fwd=stale; fwd-status=503; collapsed; detail=stale-if-error-503',
      )
      assert.equal(origin.count('/cut'), 2)
    })

    test('a waiter whose own request allows no stale response asks the origin itself', async () => {
      // a minute stale: stale-if-error=0 forbids it (RFC 5861 §4, the request's value wins)
      const strict = { 'cache-control': 'stale-if-error=0' }
      const [leader, ...waiters] = await fourAtOnce('/strict', '503', strict)
      assert.equal(leader?.body, 'kept /strict')
      for (const waiter of waiters) {
        assert.equal(waiter.status, 503)
        assert.equal(waiter.body, 'down')
        assert.equal(waiter.headers['cache-status'], 'undici-cache; fwd=stale; detail=status')
      }
      assert.equal(origin.count('/strict'), 5)
    })
  })
}
