import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { type Dispatcher, request } from 'undici'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { makeAgent, send, sleep, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

const LAST_MODIFIED = 'Mon, 01 Jan 2024 00:00:00 GMT'
const EARLIER = 'Sun, 31 Dec 2023 00:00:00 GMT'
const LATER = 'Tue, 02 Jan 2024 00:00:00 GMT'

/** A GET whose body is read whole, then its trailers (undici fills them in once the body has ended). */
async function withTrailers(dispatcher: Dispatcher, url: string) {
  const res = await request(url, { dispatcher })
  const body = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body, trailers: { ...res.trailers } }
}

/** A fresh hit's Cache-Status: ttl counts whole seconds left, the lifetime less an age under 2 s (Date has whole seconds). */
function assertFreshHit(cacheStatus: unknown, ttl = 60) {
  assert.match(String(cacheStatus), new RegExp(`^undici-cache; hit; ttl=(${ttl - 2}|${ttl - 1}|${ttl})$`))
}

for (const kind of storeKinds) {
  describe(`trailers and conditional requests on a miss (${kind.name})`, () => {
    let origin: Origin
    let cache: ReturnType<typeof makeAgent>

    before(async () => {
      origin = await startOrigin((req, res) => {
        res.sendDate = false
        const path = req.url ?? '/'
        if (path === '/trailers') {
          // chunked, with trailer fields after the body (RFC 9110 §6.5)
          res.writeHead(200, { 'cache-control': 'max-age=60', trailer: 'x-checksum, x-timing' })
          res.write('part one, ')
          res.addTrailers({ 'x-checksum': 'abc123', 'x-timing': '5' })
          return res.end('part two')
        }
        // a conditional origin (RFC 9110 §13.2.2): If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since
        const cacheControl = path.startsWith('/no-cache') ? 'no-cache' : 'max-age=60'
        const headers = { 'cache-control': cacheControl, etag: '"e1"', 'last-modified': LAST_MODIFIED }
        const { 'if-match': ifMatch, 'if-unmodified-since': ifUnmodified } = req.headers
        if (ifMatch !== undefined && ifMatch !== '"e1"') return reply(res, 412, {}, 'origin says 412')
        if (ifUnmodified !== undefined && Date.parse(ifUnmodified) < Date.parse(LAST_MODIFIED))
          return reply(res, 412, {}, 'origin says 412')
        const ims = req.headers['if-modified-since']
        if (req.headers['if-none-match']?.includes('"e1"')) return reply(res, 304, headers)
        if (!req.headers['if-none-match'] && ims && Date.parse(ims) >= Date.parse(LAST_MODIFIED))
          return reply(res, 304, headers)
        reply(res, 200, headers, `body of ${path}`)
      })
      cache = makeAgent(kind.make())
    })
    after(async () => {
      await cache.close()
      await origin.close()
    })

    test('trailers reach the caller on a miss, are never stored, never become header fields (RFC 9111 §3.1)', async () => {
      const url = `${origin.url}/trailers`
      const miss = await withTrailers(cache.agent, url)
      assert.equal(miss.status, 200)
      assert.equal(miss.body, 'part one, part two')
      assert.deepEqual(miss.trailers, { 'x-checksum': 'abc123', 'x-timing': '5' })
      assert.equal(miss.headers['cache-status'], 'undici-cache; fwd=miss; stored')
      const hit = await withTrailers(cache.agent, url)
      assert.equal(origin.count('/trailers'), 1)
      assertFreshHit(hit.headers['cache-status'])
      assert.equal(hit.body, 'part one, part two')
      assert.deepEqual(hit.trailers, {})
      for (const name of ['x-checksum', 'x-timing', 'trailer'])
        assert.equal(hit.headers[name], undefined, `${name} on the hit`)
    })

    test('If-None-Match / If-Modified-Since on a miss reach the origin as sent; its 304 is passed on (RFC 9111 §4.3.2)', async () => {
      const cases: [string, Record<string, string>][] = [
        ['/miss-inm', { 'if-none-match': '"e1"' }],
        ['/miss-ims', { 'if-modified-since': LAST_MODIFIED }],
        ['/miss-both', { 'if-none-match': 'W/"e0", "e1"', 'if-modified-since': LATER }],
      ]
      for (const [path, conditionals] of cases) {
        const r = await send(cache.agent, `${origin.url}${path}`, { headers: conditionals })
        assert.equal(r.status, 304, path)
        assert.equal(r.body, '', path)
        assert.equal(r.headers.etag, '"e1"', path)
        assert.equal(r.headers['cache-status'], 'undici-cache; fwd=miss; detail=status', path)
        const seen = origin.requests.filter((request) => request.url === path)
        assert.equal(seen.length, 1, path)
        for (const name of ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'])
          assert.equal(seen[0]?.headers[name], conditionals[name], `${path} ${name}`)
        // the 304 stored nothing: the next plain request is a miss too
        const plain = await send(cache.agent, `${origin.url}${path}`)
        assert.equal(plain.status, 200, path)
        assert.equal(plain.headers['cache-status'], 'undici-cache; fwd=miss; stored', path)
        assert.equal(origin.count(path), 2, path)
      }
    })

    test('If-Match / If-Unmodified-Since on a miss reach the origin as sent; its 412 is passed on', async () => {
      const cases: [string, Record<string, string>][] = [
        ['/miss-im', { 'if-match': '"other"' }],
        ['/miss-ius', { 'if-unmodified-since': EARLIER }],
      ]
      for (const [path, conditionals] of cases) {
        const r = await send(cache.agent, `${origin.url}${path}`, { headers: conditionals })
        assert.equal(r.status, 412, path)
        assert.equal(r.body, 'origin says 412', path)
        // nothing stored: a miss (RFC 9211 §2.2)
        assert.equal(r.headers['cache-status'], 'undici-cache; fwd=miss; detail=status', path)
        const seen = origin.requests.filter((request) => request.url === path)
        assert.equal(seen.length, 1, path)
        for (const name of ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'])
          assert.equal(seen[0]?.headers[name], conditionals[name], `${path} ${name}`)
      }
    })

    test('If-Match / If-Unmodified-Since are never evaluated against a stored response (RFC 9111 §4.3.2)', async () => {
      const url = `${origin.url}/stored`
      assert.equal((await send(cache.agent, url)).headers['cache-status'], 'undici-cache; fwd=miss; stored')
      // the stored ETag "e1" fails If-Match "other" and passes If-Match "e1": the origin decides both
      const cases: [Record<string, string>, number, string][] = [
        [{ 'if-match': '"other"' }, 412, 'origin says 412'],
        [{ 'if-unmodified-since': EARLIER }, 412, 'origin says 412'],
        [{ 'if-match': '"e1"' }, 200, 'body of /stored'],
        [{ 'if-unmodified-since': LATER }, 200, 'body of /stored'],
      ]
      for (const [i, [conditionals, status, body]] of cases.entries()) {
        const r = await send(cache.agent, url, { headers: conditionals })
        const label = JSON.stringify(conditionals)
        assert.equal(r.status, status, label)
        assert.equal(r.body, body, label)
        assert.equal(
          r.headers['cache-status'],
          `undici-cache; fwd=request; ${status === 200 ? 'stored' : 'detail=status'}`,
          label,
        )
        assert.equal(origin.count('/stored'), i + 2, label)
        const seen = origin.requests.at(-1)?.headers ?? {}
        for (const name of ['if-match', 'if-unmodified-since'])
          assert.equal(seen[name], conditionals[name], `${label} ${name}`)
      }
      // the entry is still served to requests without them
      assertFreshHit((await send(cache.agent, url)).headers['cache-status'])
      assert.equal(origin.count('/stored'), 5)
    })

    test('with If-Match and a stale response stored, Cache-Status says fwd=stale (RFC 9211 §2.2)', async () => {
      const url = `${origin.url}/no-cache`
      assert.equal((await send(cache.agent, url)).headers['cache-status'], 'undici-cache; fwd=miss; stored')
      const ifMatch = { 'if-match': '"e1"' }
      const stale = await send(cache.agent, url, { headers: ifMatch })
      assert.equal(stale.body, 'body of /no-cache')
      // RFC 9211 §2.2: the stored response needed validation, and the origin's 200 replaced it
      assert.equal(stale.headers['cache-status'], 'undici-cache; fwd=stale; stored')
      assert.equal(origin.count('/no-cache'), 2)
      assert.equal(origin.requests.at(-1)?.headers['if-none-match'], undefined)
    })
  })
}

for (const kind of storeKinds) {
  describe(`directives in the targeted field, over Cache-Control (RFC 9213 §2.1) (${kind.name})`, () => {
    let origin: Origin
    let cache: ReturnType<typeof makeAgent>

    before(async () => {
      // [Cache-Control, CDN-Cache-Control] per path; every response has an ETag, answered 304 or 500
      const routes: Record<string, [string, string]> = {
        '/s-maxage': ['max-age=0', 's-maxage=60'],
        '/s-maxage-in-cc': ['s-maxage=60', 'max-age=0'],
        '/swr': ['max-age=60', 'max-age=0, stale-while-revalidate=60'],
        '/swr-in-cc': ['max-age=0, stale-while-revalidate=60', 'max-age=0'],
        '/sie': ['max-age=0, must-revalidate', 'max-age=0, stale-if-error=60'],
        '/sie-in-cc': ['max-age=0, stale-if-error=60', 'max-age=0'],
        '/immutable': ['max-age=60', 'max-age=60, immutable'],
        '/immutable-in-cc': ['max-age=60, immutable', 'max-age=60'],
      }
      origin = await startOrigin((req, res) => {
        res.sendDate = false
        const path = req.url ?? '/'
        const [cc, cdn] = routes[path] ?? ['no-store', 'no-store']
        const headers: Record<string, string> = { 'cache-control': cc, 'cdn-cache-control': cdn, etag: '"t"' }
        // a second old: a reload (request max-age=0) would accept an age of exactly 0 (RFC 9111 §5.2.1.1)
        if (path.startsWith('/immutable')) headers.age = '1'
        if (req.headers['if-none-match'] === '"t"') {
          if (path.startsWith('/sie')) return reply(res, 500, {}, 'origin error')
          return reply(res, 304, headers)
        }
        reply(res, 200, headers, `targeted ${path}`)
      })
      cache = makeAgent(kind.make(), { cdnCacheControl: true })
    })
    after(async () => {
      await cache.close()
      await origin.close()
    })

    const twice = async (path: string, headers?: Record<string, string>) => {
      const first = await send(cache.agent, `${origin.url}${path}`)
      const second = await send(cache.agent, `${origin.url}${path}`, { headers })
      return { first, second }
    }

    test('s-maxage in the targeted field makes a max-age=0 response fresh; Cache-Control s-maxage yields', async () => {
      const { first, second } = await twice('/s-maxage')
      assert.equal(first.headers['cache-status'], 'undici-cache; fwd=miss; stored')
      assertFreshHit(second.headers['cache-status'])
      assert.equal(second.body, 'targeted /s-maxage')
      assert.equal(origin.count('/s-maxage'), 1)
      const other = await twice('/s-maxage-in-cc')
      assert.equal(other.second.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
      assert.equal(origin.count('/s-maxage-in-cc'), 2)
    })

    test('stale-while-revalidate in the targeted field serves stale and revalidates in the background', async () => {
      const { second } = await twice('/swr')
      // stale from the start: the targeted max-age=0 wins over Cache-Control max-age=60
      assert.match(String(second.headers['cache-status']), /^undici-cache; hit; ttl=(0|-1)$/)
      assert.equal(second.body, 'targeted /swr')
      await sleep(100)
      assert.equal(origin.count('/swr'), 2)
      assert.equal(origin.requests.at(-1)?.headers['if-none-match'], '"t"')
      // stale-while-revalidate only in Cache-Control: the targeted field has none, so the caller waits
      const other = await twice('/swr-in-cc')
      assert.equal(other.second.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
      assert.equal(origin.count('/swr-in-cc'), 2)
    })

    test('stale-if-error in the targeted field serves the stale entry on a 500, past Cache-Control must-revalidate', async () => {
      const { second } = await twice('/sie')
      assert.equal(second.status, 200)
      assert.equal(second.body, 'targeted /sie')
      assert.equal(
        second.headers['cache-status'],
        'undici-cache; fwd=stale; fwd-status=500; detail=stale-if-error-500',
      )
      assert.equal(origin.count('/sie'), 2)
      const other = await twice('/sie-in-cc')
      assert.equal(other.second.status, 500)
      assert.equal(other.second.body, 'origin error')
      assert.equal(origin.count('/sie-in-cc'), 2)
    })

    test('immutable in the targeted field: a reload is served from the cache; in Cache-Control only, not', async () => {
      const reload = { 'cache-control': 'max-age=0' }
      const { second } = await twice('/immutable', reload)
      assertFreshHit(second.headers['cache-status'], 59)
      assert.equal(origin.count('/immutable'), 1)
      const other = await twice('/immutable-in-cc', reload)
      assert.equal(other.second.headers['cache-status'], 'undici-cache; fwd=request; fwd-status=304')
      assert.equal(origin.count('/immutable-in-cc'), 2)
    })
  })
}

describe('targeted stale-if-error when the origin is down (RFC 9213, RFC 5861 §4)', () => {
  test('a refused connection serves the stale entry the targeted field allows', async () => {
    const origin = await startOrigin((_req, res) => {
      const headers = { 'cache-control': 'max-age=0, must-revalidate', etag: '"d"' }
      reply(res, 200, { ...headers, 'cdn-cache-control': 'max-age=0, stale-if-error=60' }, 'kept')
    })
    const cache = makeAgent(new MemoryStore(), { cdnCacheControl: true })
    const plain = makeAgent(new MemoryStore())
    for (const c of [cache, plain]) await send(c.agent, `${origin.url}/down`)
    await origin.close()
    await sleep(100) // undici notices the closed keep-alive sockets: the next request connects anew
    const stale = await send(cache.agent, `${origin.url}/down`)
    assert.equal(stale.body, 'kept')
    assert.equal(stale.headers['cache-status'], 'undici-cache; fwd=stale; detail=stale-if-error-econnrefused')
    // without the option Cache-Control's must-revalidate holds: the error reaches the caller
    await assert.rejects(send(plain.agent, `${origin.url}/down`), { code: 'ECONNREFUSED' })
    await cache.close()
    await plain.close()
  })
})
