import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { makeAgent, send, sleep, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

/** Big enough to be a body file in SqliteStore. */
const BIG_BODY = 'r'.repeat(200 * 1024)

for (const kind of storeKinds) {
  describe(`revalidation (${kind.name})`, () => {
    let origin: Origin
    let cache: ReturnType<typeof makeAgent>
    let version = 1

    before(async () => {
      origin = await startOrigin((req, res) => {
        const path = req.url ?? '/'
        const etag = `"v${version}"`
        if (path === '/no-cache') {
          if (req.headers['if-none-match'] === etag) return reply(res, 304, { etag, 'x-seen': 'revalidated' })
          return reply(res, 200, { 'cache-control': 'no-cache', etag, 'x-seen': 'full' }, `body v${version}`)
        }
        if (path === '/304-without-date') {
          res.setHeader('etag', '"d"')
          res.setHeader('cache-control', 'max-age=1')
          if (req.headers['if-none-match'] !== '"d"') return res.end('dated body')
          res.sendDate = false
          res.statusCode = 304
          return res.end()
        }
        if (path === '/304-without-age') {
          const headers = { etag: '"a"', 'cache-control': 'max-age=60' }
          if (req.headers['if-none-match'] === '"a"') return reply(res, 304, headers)
          return reply(res, 200, { ...headers, age: '70' }, 'aged body')
        }
        if (path === '/freshen') {
          // The 304 carries Cache-Control (RFC 9110 §15.4.5): the entry must be freshened, not dropped.
          if (req.headers['if-none-match'] === etag) {
            return reply(res, 304, { etag, 'cache-control': 'max-age=60', 'x-updated': 'yes' })
          }
          return reply(
            res,
            200,
            { 'cache-control': 'max-age=0', etag, 'content-type': 'text/plain' },
            'freshen me',
          )
        }
        if (path === '/last-modified') {
          const lastModified = 'Tue, 01 Jan 2030 00:00:00 GMT'
          if (req.headers['if-modified-since'] === lastModified) return reply(res, 304, {})
          return reply(res, 200, { 'cache-control': 'max-age=1', 'last-modified': lastModified }, 'dated')
        }
        if (path === '/changes') {
          if (req.headers['if-none-match'] === etag) return reply(res, 304, { etag })
          return reply(res, 200, { 'cache-control': 'no-cache', etag }, `changes v${version}`)
        }
        if (path === '/weak-then-strong-304') {
          // a 304 with the strong form of the weak tag asked about: not the stored response's validator
          if (req.headers['if-none-match']) return reply(res, 304, { etag: '"w"' })
          return reply(res, 200, { 'cache-control': 'no-cache', etag: 'W/"w"' }, 'weak')
        }
        if (path === '/wrong-304') {
          if (req.headers['if-none-match']) return reply(res, 304, { etag: '"something-else"' })
          return reply(res, 200, { 'cache-control': 'no-cache', etag: '"mine"' }, 'mine')
        }
        if (path === '/removed-meanwhile') {
          const headers = { 'cache-control': 'no-cache', etag: '"r"' }
          if (req.headers['if-none-match'] === '"r"') return setTimeout(() => reply(res, 304, headers), 150)
          return reply(res, 200, headers, BIG_BODY)
        }
        if (path === '/304-with-length') {
          const headers = { 'cache-control': 'no-cache', etag: '"l"' }
          if (req.headers['if-none-match'] !== '"l"') return reply(res, 200, headers, 'length body')
          // the 200's length on the 304, as RFC 9110 §8.6 allows (node:http sends the header as set)
          res.writeHead(304, { ...headers, 'content-length': '11' })
          return res.end()
        }
        if (path === '/no-validator') return reply(res, 200, { 'cache-control': 'max-age=0' }, 'plain')
        reply(res, 404, {})
      })
      cache = makeAgent(kind.make())
    })
    after(async () => {
      await cache.close()
      await origin.close()
    })

    test('no-cache: every use revalidates; a 304 serves the stored body with updated headers', async () => {
      const first = await send(cache.agent, `${origin.url}/no-cache`)
      assert.equal(first.headers['cache-status'], 'undici-cache; fwd=miss; stored')
      const second = await send(cache.agent, `${origin.url}/no-cache`)
      assert.equal(second.status, 200)
      assert.equal(second.body, 'body v1')
      assert.equal(second.headers['x-seen'], 'revalidated')
      assert.equal(second.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
      assert.match(String(second.headers.age), /^[01]$/)
      assert.equal(origin.count('/no-cache'), 2)
      assert.equal(origin.requests.at(-1)?.headers['if-none-match'], '"v1"')
    })

    test('a 304 carrying Cache-Control freshens the entry (RFC 9111 §4.3.4)', async () => {
      await send(cache.agent, `${origin.url}/freshen`)
      const revalidated = await send(cache.agent, `${origin.url}/freshen`)
      assert.equal(revalidated.body, 'freshen me')
      assert.equal(revalidated.headers['x-updated'], 'yes')
      assert.equal(revalidated.headers['content-type'], 'text/plain')
      assert.equal(revalidated.headers['cache-control'], 'max-age=60')
      const hit = await send(cache.agent, `${origin.url}/freshen`)
      assert.equal(hit.body, 'freshen me')
      assert.match(String(hit.headers['cache-status']), /^undici-cache; hit; ttl=(58|59|60)$/)
      assert.equal(hit.headers['x-updated'], 'yes')
      assert.equal(origin.count('/freshen'), 2)
    })

    test("a 304 without Date or Age freshens from its own exchange, not the stored response's times", async () => {
      await send(cache.agent, `${origin.url}/304-without-date`)
      await sleep(1100)
      await send(cache.agent, `${origin.url}/304-without-age`)
      for (const path of ['/304-without-date', '/304-without-age']) {
        const revalidated = await send(cache.agent, `${origin.url}${path}`)
        const next = await send(cache.agent, `${origin.url}${path}`)
        assert.equal(revalidated.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
        assert.match(String(next.headers['cache-status']), /^undici-cache; hit; ttl=/)
        assert.match(String(next.headers.age), /^[01]$/)
        assert.equal(origin.count(path), 2)
      }
    })

    test('If-Modified-Since is built from Last-Modified once the entry is stale', async () => {
      await send(cache.agent, `${origin.url}/last-modified`)
      const hit = await send(cache.agent, `${origin.url}/last-modified`)
      assert.match(String(hit.headers['cache-status']), /^undici-cache; hit; ttl=[01]$/)
      await sleep(1100)
      const revalidated = await send(cache.agent, `${origin.url}/last-modified`)
      assert.equal(revalidated.body, 'dated')
      assert.match(String(revalidated.headers['cache-status']), /fwd=stale; fwd-status=304/)
      assert.equal(origin.requests.at(-1)?.headers['if-modified-since'], 'Tue, 01 Jan 2030 00:00:00 GMT')
      assert.equal(origin.count('/last-modified'), 2)
    })

    test('a changed representation (200 to a conditional request) replaces the entry', async () => {
      await send(cache.agent, `${origin.url}/changes`)
      version = 2
      const changed = await send(cache.agent, `${origin.url}/changes`)
      assert.equal(changed.body, 'changes v2')
      assert.equal(changed.headers['cache-status'], 'undici-cache; fwd=stale; stored')
      const next = await send(cache.agent, `${origin.url}/changes`)
      assert.equal(next.body, 'changes v2')
      assert.match(String(next.headers['cache-status']), /fwd-status=304/)
      assert.equal(origin.count('/changes'), 3)
    })

    test('a 304 for another representation is not used: the request is repeated unconditionally', async () => {
      await send(cache.agent, `${origin.url}/wrong-304`)
      const result = await send(cache.agent, `${origin.url}/wrong-304`)
      assert.equal(result.status, 200)
      assert.equal(result.body, 'mine')
      assert.equal(origin.count('/wrong-304'), 3)
      assert.equal(origin.requests.at(-1)?.headers['if-none-match'], undefined)
    })

    test("a 304's strong ETag does not freshen a response stored with the weak one (RFC 9111 §4.3.4)", async () => {
      const url = `${origin.url}/weak-then-strong-304`
      await send(cache.agent, url)
      const result = await send(cache.agent, url)
      assert.equal(result.status, 200)
      assert.equal(result.body, 'weak')
      assert.equal(result.headers.etag, 'W/"w"')
      assert.equal(result.headers['cache-status'], 'undici-cache; fwd=stale; stored')
      assert.deepEqual(
        origin.requests
          .filter((r) => r.url === '/weak-then-strong-304')
          .map((r) => r.headers['if-none-match']),
        [undefined, 'W/"w"', undefined],
      )
    })

    test('an entry removed while its revalidation is at the origin: the 304 is followed by an unconditional request', async () => {
      const url = `${origin.url}/removed-meanwhile`
      await send(cache.agent, url)
      const revalidated = send(cache.agent, url)
      await sleep(50)
      await cache.store.delete(url)
      const result = await revalidated
      assert.equal(result.status, 200)
      assert.equal(result.body, BIG_BODY)
      assert.equal(result.headers['cache-status'], 'undici-cache; fwd=stale; stored')
      assert.deepEqual(
        origin.requests.filter((r) => r.url === '/removed-meanwhile').map((r) => r.headers['if-none-match']),
        [undefined, '"r"', undefined],
      )
    })

    test("a 304 naming the 200's Content-Length revalidates (undici fails such a 304 on its own)", async () => {
      const url = `${origin.url}/304-with-length`
      await send(cache.agent, url)
      for (let i = 0; i < 2; i++) {
        const revalidated = await send(cache.agent, url)
        assert.equal(revalidated.body, 'length body')
        assert.equal(revalidated.headers['content-length'], '11')
        assert.equal(revalidated.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
      }
      assert.deepEqual(
        origin.requests.filter((r) => r.url === '/304-with-length').map((r) => r.headers['if-none-match']),
        [undefined, '"l"', '"l"'],
      )
    })

    test('a response that could never be reused (max-age=0, no validator) is not stored', async () => {
      const first = await send(cache.agent, `${origin.url}/no-validator`)
      const second = await send(cache.agent, `${origin.url}/no-validator`)
      assert.equal(second.body, 'plain')
      assert.equal(first.headers['cache-status'], 'undici-cache; fwd=miss; detail=no-freshness')
      assert.equal(second.headers['cache-status'], 'undici-cache; fwd=miss; detail=no-freshness')
      assert.equal(origin.count('/no-validator'), 2)
    })
  })
}
