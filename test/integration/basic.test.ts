import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { makeAgent, send, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

for (const kind of storeKinds) {
  describe(`hits and misses (${kind.name})`, () => {
    let origin: Origin
    let cache: ReturnType<typeof makeAgent>
    let counter = 0

    before(async () => {
      origin = await startOrigin((req, res) => {
        counter++
        const url = new URL(req.url ?? '/', 'http://x')
        if (url.pathname === '/fresh')
          return reply(res, 200, { 'cache-control': 'max-age=60' }, `body ${counter}`)
        if (url.pathname === '/chunked') {
          res.writeHead(200, { 'cache-control': 'max-age=60' })
          res.write('part one, ')
          return res.end('part two')
        }
        if (url.pathname === '/nothing') return reply(res, 200, {}, 'no freshness')
        if (url.pathname === '/forced') {
          const cacheControl = url.searchParams.get('cc')
          return reply(res, 200, cacheControl ? { 'cache-control': cacheControl } : {}, `forced ${counter}`)
        }
        if (url.pathname === '/no-date' || url.pathname === '/no-date-no-store') {
          res.sendDate = false
          const cacheControl = url.pathname === '/no-date' ? 'max-age=60' : 'no-store'
          return reply(res, 200, { 'cache-control': cacheControl, etag: '"d"' }, 'dateless')
        }
        if (url.pathname === '/validated') {
          const headers = { 'cache-control': 'no-cache', etag: '"v"' }
          if (req.headers['if-none-match'] === '"v"') return reply(res, 304, headers)
          return reply(res, 200, headers, 'validated')
        }
        if (url.pathname === '/404') return reply(res, 404, { 'cache-control': 'max-age=60' }, 'not here')
        if (url.pathname === '/204') return reply(res, 204, { 'cache-control': 'max-age=60' })
        if (url.pathname === '/500') return reply(res, 500, { 'cache-control': 'max-age=60' }, 'broken')
        if (url.pathname === '/with-status') {
          return reply(res, 200, { 'cache-control': 'max-age=60', 'cache-status': 'cdn; hit' }, 'x')
        }
        reply(res, 200, { 'cache-control': 'max-age=60' }, `other ${url.pathname}${url.search}`)
      })
      cache = makeAgent(kind.make())
    })
    after(async () => {
      await cache.close()
      await origin.close()
    })

    test('a fresh response is stored on a miss and served on the next request', async () => {
      const first = await send(cache.agent, `${origin.url}/fresh`)
      assert.equal(first.status, 200)
      assert.equal(first.headers['cache-status'], 'undici-cache; fwd=miss; stored')
      assert.equal(first.headers.age, undefined)
      const second = await send(cache.agent, `${origin.url}/fresh`)
      assert.equal(second.body, first.body)
      assert.match(String(second.headers['cache-status']), /^undici-cache; hit; ttl=(58|59|60)$/)
      assert.match(String(second.headers.age), /^[01]$/)
      assert.equal(second.headers['content-length'], String(Buffer.byteLength(first.body)))
      assert.equal(origin.count('/fresh'), 1)
    })

    test('a chunked body is stored whole and served with its length', async () => {
      const first = await send(cache.agent, `${origin.url}/chunked`)
      const second = await send(cache.agent, `${origin.url}/chunked`)
      assert.equal(first.body, 'part one, part two')
      assert.equal(second.body, 'part one, part two')
      assert.equal(second.headers['content-length'], '18')
      assert.equal(origin.count('/chunked'), 1)
    })

    test('the query string is part of the key, also when given as the query option', async () => {
      await send(cache.agent, `${origin.url}/q?a=1`)
      const again = await send(cache.agent, `${origin.url}/q?a=1`)
      const other = await send(cache.agent, `${origin.url}/q?a=2`)
      assert.equal(again.body, 'other /q?a=1')
      assert.equal(other.body, 'other /q?a=2')
      assert.equal(origin.count('/q?a=1'), 1)
      assert.equal(origin.count('/q?a=2'), 1)
    })

    test('a 404 with max-age is cached; a 500 is not (not understood by §3)', async () => {
      await send(cache.agent, `${origin.url}/404`)
      const hit = await send(cache.agent, `${origin.url}/404`)
      assert.equal(hit.status, 404)
      assert.equal(hit.body, 'not here')
      assert.equal(origin.count('/404'), 1)
      await send(cache.agent, `${origin.url}/500`)
      const again = await send(cache.agent, `${origin.url}/500`)
      assert.equal(again.headers['cache-status'], 'undici-cache; fwd=miss; detail=status')
      assert.equal(origin.count('/500'), 2)
    })

    test('a stored 204 is served without a Content-Length, as the origin sent it (RFC 9110 §8.6)', async () => {
      const first = await send(cache.agent, `${origin.url}/204`)
      const second = await send(cache.agent, `${origin.url}/204`)
      const head = await send(cache.agent, `${origin.url}/204`, { method: 'HEAD' })
      assert.equal(origin.count('/204'), 1)
      for (const reply of [first, second, head]) {
        assert.equal(reply.status, 204)
        assert.equal(reply.body, '')
        assert.equal(reply.headers['content-length'], undefined)
      }
      assert.match(String(second.headers['cache-status']), /^undici-cache; hit; ttl=/)
      assert.match(String(head.headers['cache-status']), /^undici-cache; hit; ttl=/)
    })

    test('a response with no freshness information and no validator is not stored', async () => {
      await send(cache.agent, `${origin.url}/nothing`)
      const second = await send(cache.agent, `${origin.url}/nothing`)
      assert.equal(second.body, 'no freshness')
      assert.equal(second.headers['cache-status'], 'undici-cache; fwd=miss; detail=no-freshness')
      assert.equal(origin.count('/nothing'), 2)
    })

    test('HEAD is answered from a stored GET, with its headers and no body', async () => {
      await send(cache.agent, `${origin.url}/head-target`)
      const head = await send(cache.agent, `${origin.url}/head-target`, { method: 'HEAD' })
      assert.equal(head.status, 200)
      assert.equal(head.body, '')
      assert.equal(head.headers['content-length'], String(Buffer.byteLength('other /head-target')))
      assert.match(String(head.headers['cache-status']), /^undici-cache; hit/)
      assert.equal(origin.count('/head-target'), 1)
    })

    test('an upstream Cache-Status is kept before ours (RFC 9211 §2: nearest the user last)', async () => {
      const first = await send(cache.agent, `${origin.url}/with-status`)
      assert.equal(first.headers['cache-status'], 'cdn; hit, undici-cache; fwd=miss; stored')
      const second = await send(cache.agent, `${origin.url}/with-status`)
      assert.match(String(second.headers['cache-status']), /^cdn; hit, undici-cache; hit; ttl=(58|59|60)$/)
    })

    test('cache.bypass skips lookup and storage; cache.key and cache.ttl override', async () => {
      const bypassed = await send(cache.agent, `${origin.url}/fresh`, { cache: { bypass: true } })
      assert.equal(bypassed.headers['cache-status'], 'undici-cache; fwd=bypass')
      const before = origin.count('/nothing')
      await send(cache.agent, `${origin.url}/nothing`, { cache: { key: 'custom-key' } })
      const keyed = await send(cache.agent, `${origin.url}/other-path`, { cache: { key: 'custom-key' } })
      assert.equal(keyed.headers['cache-status'], 'undici-cache; fwd=miss; stored')
      const forced = await send(cache.agent, `${origin.url}/x`, { cache: { key: 'custom-key', ttl: 30 } })
      // ttl = 30 - age; the Date field's whole seconds alone can make the age up to 1 s (max-age=60 would say ~59)
      assert.match(String(forced.headers['cache-status']), /^undici-cache; hit; ttl=(28|29|30)$/)
      assert.equal(forced.body, 'other /other-path')
      assert.equal(origin.count('/nothing'), before + 1)
    })

    test('a GET with content is neither answered from the cache nor stored: the key does not hold it (RFC 9110 §9.3.1)', async () => {
      const url = `${origin.url}/searched`
      const search = async (body: string) => {
        const res = await request(url, { dispatcher: cache.agent, method: 'GET', body })
        return { status: res.headers['cache-status'], body: await res.body.text() }
      }
      assert.deepEqual(await search(''), {
        status: 'undici-cache; fwd=miss; stored',
        body: 'other /searched',
      })
      for (const query of ['{"q":"a"}', '{"q":"b"}']) {
        assert.deepEqual(await search(query), { status: 'undici-cache; fwd=bypass', body: 'other /searched' })
      }
      assert.equal(origin.count('/searched'), 3)
      assert.match(String((await search('')).status), /^undici-cache; hit/)
    })

    test('cache.ttl counts from the last validation of a no-cache response', async () => {
      const url = `${origin.url}/validated`
      assert.equal(
        (await send(cache.agent, url, { cache: { ttl: 2 } })).headers['cache-status'],
        'undici-cache; fwd=miss; stored',
      )
      await new Promise((resolve) => setTimeout(resolve, 2100))
      const validated = await send(cache.agent, url, { cache: { ttl: 2 } })
      assert.deepEqual(
        [validated.body, validated.headers['cache-status']],
        ['validated', 'undici-cache; fwd=stale; fwd-status=304'],
      )
      // the Date field's whole seconds alone can make the age up to 1 s
      const hit = await send(cache.agent, url, { cache: { ttl: 2 } })
      assert.match(String(hit.headers['cache-status']), /^undici-cache; hit; ttl=[01]$/)
      assert.equal(origin.count('/validated'), 2)
    })

    for (const cacheControl of ['', 'public', 'max-age=0', 'no-cache']) {
      test(`cache.ttl keeps a response with no lifetime and no validator${cacheControl ? ` (${cacheControl})` : ''} for the requests that give one`, async () => {
        const path = `/forced?cc=${encodeURIComponent(cacheControl)}`
        const url = `${origin.url}${path}`
        const first = await send(cache.agent, url, { cache: { ttl: 30 } })
        assert.equal(first.headers['cache-status'], 'undici-cache; fwd=miss; stored')
        const second = await send(cache.agent, url, { cache: { ttl: 30 } })
        assert.equal(second.body, first.body)
        assert.match(String(second.headers['cache-status']), /^undici-cache; hit; ttl=(28|29|30)$/)
        // without a ttl of its own, a request finds it stale and without a validator: to the origin
        const plain = await send(cache.agent, url)
        assert.notEqual(plain.body, first.body)
        assert.equal(origin.count(path), 2)
      })
    }

    test('a response without Date gets one saying when it was received (RFC 9110 §6.6.1)', async () => {
      const sentMs = Date.now()
      const miss = await send(cache.agent, `${origin.url}/no-date`)
      const date = String(miss.headers.date)
      assert.ok(Math.abs(Date.parse(date) - sentMs) < 2000, date)
      const hit = await send(cache.agent, `${origin.url}/no-date`)
      assert.match(String(hit.headers['cache-status']), /^undici-cache; hit/)
      assert.equal(hit.headers.date, date)
      const notModified = await send(cache.agent, `${origin.url}/no-date`, {
        headers: { 'if-none-match': '"d"' },
      })
      assert.equal(notModified.status, 304)
      assert.equal(notModified.headers.date, date)
      const passed = await send(cache.agent, `${origin.url}/no-date-no-store`)
      assert.ok(Math.abs(Date.parse(String(passed.headers.date)) - sentMs) < 2000)
      assert.equal(origin.count('/no-date'), 1)
    })

    test('a bad per-request cache option is rejected with an error naming it', async () => {
      await assert.rejects(send(cache.agent, `${origin.url}/fresh`, { cache: { ttl: -1 } }), {
        name: 'RangeError',
        message: /cache\.ttl/,
      })
    })
  })
}
