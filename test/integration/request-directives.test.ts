import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { makeAgent, send, sleep, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

for (const kind of storeKinds) {
  describe(`request directives (${kind.name})`, () => {
    let origin: Origin
    let cache: ReturnType<typeof makeAgent>

    before(async () => {
      origin = await startOrigin((req, res) => {
        const path = req.url ?? '/'
        if (path === '/short') return reply(res, 200, { 'cache-control': 'max-age=1' }, 'short')
        if (path === '/short-must-revalidate') {
          return reply(res, 200, { 'cache-control': 'max-age=1, must-revalidate' }, 'strict')
        }
        reply(res, 200, { 'cache-control': 'max-age=60', etag: '"e"' }, `content of ${path}`)
      })
      cache = makeAgent(kind.make())
    })
    after(async () => {
      await cache.close()
      await origin.close()
    })

    const get = (path: string, headers?: Record<string, string>, onlyIfCached?: boolean) =>
      send(cache.agent, `${origin.url}${path}`, {
        headers,
        ...(onlyIfCached ? { cache: { onlyIfCached } } : {}),
      })

    test('request no-cache and Pragma: no-cache revalidate a fresh entry (RFC 9111 §5.2.1.4, §5.4)', async () => {
      await get('/a')
      const noCache = await get('/a', { 'cache-control': 'no-cache' })
      assert.equal(noCache.headers['cache-status'], 'undici-cache; fwd=request; stored')
      assert.equal(origin.requests.at(-1)?.headers['if-none-match'], '"e"')
      await get('/a', { pragma: 'no-cache' })
      const pragmaIgnored = await get('/a', { pragma: 'no-cache', 'cache-control': 'max-stale' })
      assert.match(String(pragmaIgnored.headers['cache-status']), /^undici-cache; hit/)
      assert.equal(origin.count('/a'), 3)
    })

    test('request max-age=0 revalidates; request no-store is served but stores nothing', async () => {
      await get('/b')
      await get('/b', { 'cache-control': 'max-age=0' })
      assert.equal(origin.count('/b'), 2)
      const noStore = await get('/c', { 'cache-control': 'no-store' })
      assert.equal(noStore.headers['cache-status'], 'undici-cache; fwd=miss; detail=request-no-store')
      await get('/c')
      assert.equal(origin.count('/c'), 2)
    })

    test('a malformed request Cache-Control is neither answered unvalidated nor stored', async () => {
      await get('/m')
      const revalidated = await get('/m', { 'cache-control': 'no-cache; x' })
      assert.equal(revalidated.headers['cache-status'], 'undici-cache; fwd=request; detail=request-no-store')
      const unstored = await get('/n', { 'cache-control': 'no-store; no-cache' })
      assert.equal(unstored.headers['cache-status'], 'undici-cache; fwd=miss; detail=request-no-store')
      await get('/n')
      assert.equal(origin.count('/m'), 2)
      assert.equal(origin.count('/n'), 2)
    })

    test('min-fresh asks for more remaining freshness than the entry has', async () => {
      await get('/d')
      const ok = await get('/d', { 'cache-control': 'min-fresh=30' })
      assert.match(String(ok.headers['cache-status']), /^undici-cache; hit/)
      await get('/d', { 'cache-control': 'min-fresh=120' })
      assert.equal(origin.count('/d'), 2)
    })

    test('max-stale serves a stale entry, but not past must-revalidate (RFC 9111 §4.2.4)', async () => {
      await get('/short')
      await get('/short-must-revalidate')
      await sleep(1100)
      const stale = await get('/short', { 'cache-control': 'max-stale' })
      assert.match(String(stale.headers['cache-status']), /^undici-cache; hit; ttl=-[0-9]+$/)
      const bounded = await get('/short', { 'cache-control': 'max-stale=100' })
      assert.match(String(bounded.headers['cache-status']), /^undici-cache; hit/)
      assert.equal(origin.count('/short'), 1)
      const strict = await get('/short-must-revalidate', { 'cache-control': 'max-stale' })
      // sent on to the origin; its answer (max-age=1, its Date to the second) may come already stale on
      // a busy machine, and then is not stored (detail=no-freshness)
      assert.match(
        String(strict.headers['cache-status']),
        /^undici-cache; fwd=stale; (stored|detail=no-freshness)$/,
      )
      assert.equal(origin.count('/short-must-revalidate'), 2)
    })

    test('only-if-cached answers from the cache or with 504, never contacting the origin', async () => {
      const miss = await get('/never-fetched', { 'cache-control': 'only-if-cached' })
      assert.equal(miss.status, 504)
      assert.equal(miss.headers['cache-status'], 'undici-cache; detail=only-if-cached')
      const optionMiss = await get('/never-fetched', undefined, true)
      assert.equal(optionMiss.status, 504)
      assert.equal(origin.count('/never-fetched'), 0)
      await get('/e')
      const hit = await get('/e', { 'cache-control': 'only-if-cached' })
      assert.equal(hit.body, 'content of /e')
      assert.equal(origin.count('/e'), 1)
    })

    test('only-if-cached with a condition for the origin (If-Match, If-Unmodified-Since), a bypass or an unsafe method answers 504 too', async () => {
      await get('/f')
      const conditions: Record<string, string>[] = [
        { 'if-match': '"e"' },
        { 'if-unmodified-since': 'Tue, 01 Jan 2030 00:00:00 GMT' },
        { 'if-match': '*' },
      ]
      for (const condition of conditions) {
        assert.equal((await get('/f', condition, true)).status, 504)
        assert.equal((await get('/f', { ...condition, 'cache-control': 'only-if-cached' })).status, 504)
      }
      const notCached = makeAgent(kind.make(), { methods: ['GET'] })
      const head = await request(`${origin.url}/f`, {
        dispatcher: notCached.agent,
        method: 'HEAD',
        headers: { 'cache-control': 'only-if-cached' },
      })
      assert.equal(head.statusCode, 504)
      await head.body.dump()
      await notCached.close()
      for (const method of ['POST', 'DELETE']) {
        assert.equal(
          (await send(cache.agent, `${origin.url}/f`, { method, cache: { onlyIfCached: true } })).status,
          504,
        )
        const viaHeader = { method, headers: { 'cache-control': 'only-if-cached' } }
        assert.equal((await send(cache.agent, `${origin.url}/f`, viaHeader)).status, 504)
      }
      await assert.rejects(
        send(cache.agent, `${origin.url}/f`, { method: 'POST', cache: { tll: 1 } as never }),
        {
          name: 'TypeError',
          message: /tll/,
        },
      )
      await assert.rejects(
        send(cache.agent, `${origin.url}/f`, { cache: { onlyIfCached: true, bypass: true } }),
        { name: 'TypeError', message: /cache\.bypass and cache\.onlyIfCached/ },
      )
      assert.equal(origin.count('/f'), 1)
    })
  })
}
