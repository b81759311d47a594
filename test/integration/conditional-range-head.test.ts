import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { makeAgent, send, sleep, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

const BODY = Array.from({ length: 1000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('')
const LAST_MODIFIED = 'Mon, 01 Jan 2024 00:00:00 GMT'
/** An hour before the test runs. */
const UNDATED_LAST_MODIFIED = new Date(Date.now() - 3_600_000).toUTCString()

for (const kind of storeKinds) {
  describe(`client conditionals, Range and HEAD (${kind.name})`, () => {
    let origin: Origin
    let cache: ReturnType<typeof makeAgent>

    before(async () => {
      origin = await startOrigin((req, res) => {
        const path = req.url ?? '/'
        const headers: Record<string, string> = {
          'cache-control': path.startsWith('/short') ? 'max-age=1' : 'max-age=60',
          etag: '"v1"',
          'last-modified': LAST_MODIFIED,
          'content-type': 'text/plain',
        }
        if (req.method === 'HEAD' && path.startsWith('/changed-head')) {
          const changes: Record<string, Record<string, string>> = {
            '/changed-head-length': { 'content-length': '999' },
            '/changed-head-etag': { etag: '"v2"' },
            '/changed-head-weak-etag': { etag: 'W/"v1"' },
            '/changed-head-last-modified': { 'last-modified': 'Wed, 21 Oct 2015 07:28:01 GMT' },
          }
          const { 'last-modified': _dropped, ...withoutLastModified } = headers
          const sent = path === '/changed-head-no-last-modified' ? withoutLastModified : headers
          return reply(res, 200, { ...sent, ...changes[path] })
        }
        if (req.method === 'HEAD' && path === '/short-head') {
          return reply(res, 200, { ...headers, 'cache-control': 'max-age=60', 'x-from-head': 'yes' })
        }
        if (path === '/empty') return reply(res, 200, headers, '')
        if (path === '/undated') {
          // no Date: the cache gives the response the time it was received, an hour after Last-Modified
          res.sendDate = false
          return reply(res, 200, { ...headers, 'last-modified': UNDATED_LAST_MODIFIED }, BODY)
        }
        // a 304 freshens for a minute, so what follows a revalidation is answered from the cache however slow the run
        if (req.headers['if-none-match'] === '"v1"')
          return reply(res, 304, { ...headers, 'cache-control': 'max-age=60' })
        const range = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range ?? ''))
        if (range) {
          const [start, end] = [Number(range[1]), Number(range[2])]
          headers['content-range'] = `bytes ${start}-${end}/${BODY.length}`
          return reply(res, 206, headers, BODY.slice(start, end + 1))
        }
        reply(res, 200, headers, BODY)
      })
      cache = makeAgent(kind.make())
    })
    after(async () => {
      await cache.close()
      await origin.close()
    })

    const get = (path: string, headers?: Record<string, string>, method?: string) =>
      send(cache.agent, `${origin.url}${path}`, { headers, method })

    test('a matching If-None-Match or If-Modified-Since gets a 304 from the cache (RFC 9111 §4.3.2)', async () => {
      await get('/c')
      const etagMatch = await get('/c', { 'if-none-match': 'W/"v1"' })
      assert.equal(etagMatch.status, 304)
      assert.equal(etagMatch.body, '')
      assert.equal(etagMatch.headers.etag, '"v1"')
      assert.equal(etagMatch.headers['content-type'], undefined)
      assert.match(String(etagMatch.headers['cache-status']), /^undici-cache; hit/)
      const dateMatch = await get('/c', { 'if-modified-since': LAST_MODIFIED })
      assert.equal(dateMatch.status, 304)
      const other = await get('/c', { 'if-none-match': '"v2"' })
      assert.equal(other.status, 200)
      assert.equal(other.body, BODY)
      assert.equal(origin.count('/c'), 1)
    })

    test('a conditional request for a stale entry is revalidated with our validators, then answered', async () => {
      await get('/short-c')
      await sleep(1100)
      const answer = await get('/short-c', { 'if-none-match': '"v1"' })
      assert.equal(answer.status, 304)
      assert.equal(origin.count('/short-c'), 2)
      assert.equal(origin.requests.at(-1)?.headers['if-none-match'], '"v1"')
      const full = await get('/short-c', { 'if-none-match': '"other"' })
      assert.equal(full.status, 200)
      assert.equal(full.body, BODY)
      assert.equal(origin.count('/short-c'), 2)
    })

    test('If-Match is the origin’s to answer: forwarded', async () => {
      await get('/c', { 'if-match': '"v1"' })
      assert.equal(origin.count('/c'), 2)
    })

    test('a single byte range is answered with 206 from the stored body (RFC 9110 §14)', async () => {
      await get('/r')
      const cases: [string, number, string | undefined, string][] = [
        ['bytes=0-99', 206, 'bytes 0-99/1000', BODY.slice(0, 100)],
        ['bytes=990-', 206, 'bytes 990-999/1000', BODY.slice(990)],
        ['bytes=-5', 206, 'bytes 995-999/1000', BODY.slice(995)],
        ['bytes=500-2000', 206, 'bytes 500-999/1000', BODY.slice(500)],
        ['bytes=2000-', 416, 'bytes */1000', ''],
        ['bytes=0-1,5-6', 200, undefined, BODY],
      ]
      for (const [range, status, contentRange, body] of cases) {
        const r = await get('/r', { range })
        assert.equal(r.status, status, range)
        assert.equal(r.headers['content-range'], contentRange, range)
        assert.equal(r.body, body, range)
        if (status === 206) assert.equal(r.headers['content-length'], String(body.length))
      }
      assert.equal((await get('/r', { range: 'bytes=0-9', 'if-range': '"v1"' })).status, 206)
      assert.equal((await get('/r', { range: 'bytes=0-9', 'if-range': '"v0"' })).status, 200)
      assert.equal(origin.count('/r'), 1)
    })

    test('a suffix range of an empty body gets the 200 (satisfiable, RFC 9110 §14.1.1, yet no 206 can say so)', async () => {
      await get('/empty')
      const suffix = await get('/empty', { range: 'bytes=-5' })
      assert.equal(suffix.status, 200)
      assert.equal(suffix.body, '')
      assert.equal(suffix.headers['content-range'], undefined)
      const first = await get('/empty', { range: 'bytes=0-' })
      assert.equal(first.status, 416)
      assert.equal(first.headers['content-range'], 'bytes */0')
      assert.equal(origin.count('/empty'), 1)
    })

    test('If-Range with a date is held to the Date the cache gave a response that had none (RFC 9110 §8.8.2.2)', async () => {
      const stored = await get('/undated')
      assert.ok(Date.parse(String(stored.headers.date)) - Date.parse(UNDATED_LAST_MODIFIED) >= 3_599_000)
      const ranged = await get('/undated', { range: 'bytes=0-9', 'if-range': UNDATED_LAST_MODIFIED })
      assert.equal(ranged.status, 206)
      assert.equal(ranged.body, BODY.slice(0, 10))
      const other = await get('/undated', { range: 'bytes=0-9', 'if-range': LAST_MODIFIED })
      assert.equal(other.status, 200)
      assert.equal(origin.count('/undated'), 1)
    })

    test('a 206 from the origin is passed through and not stored', async () => {
      const partial = await get('/p', { range: 'bytes=0-9' })
      assert.equal(partial.status, 206)
      assert.equal(partial.body, BODY.slice(0, 10))
      assert.equal(partial.headers['cache-status'], 'undici-cache; fwd=miss; detail=status')
      const whole = await get('/p')
      assert.equal(whole.headers['cache-status'], 'undici-cache; fwd=miss; stored')
    })

    test('a 200 answer to a HEAD freshens the stored GET (RFC 9111 §4.3.5)', async () => {
      await get('/short-head')
      await sleep(1100)
      const head = await get('/short-head', undefined, 'HEAD')
      assert.equal(head.status, 200)
      assert.equal(head.headers['x-from-head'], 'yes')
      await sleep(50)
      const hit = await get('/short-head')
      assert.match(String(hit.headers['cache-status']), /^undici-cache; hit; ttl=(58|59|60)$/)
      assert.equal(hit.headers['x-from-head'], 'yes')
      assert.equal(hit.body, BODY)
      assert.equal(origin.count('/short-head'), 2)
    })

    test('a HEAD answer with another validator (a weak ETag for a strong one, another Last-Modified, none) or length makes the stored GET unusable (RFC 9111 §4.3.5)', async () => {
      const paths = ['etag', 'length', 'weak-etag', 'last-modified', 'no-last-modified'].map(
        (c) => `/changed-head-${c}`,
      )
      for (const path of paths) {
        await get(path)
        const head = await get(path, { 'cache-control': 'no-cache' }, 'HEAD')
        assert.equal(head.status, 200)
        await sleep(50)
        const after = await get(path)
        assert.equal(after.headers['cache-status'], 'undici-cache; fwd=miss; stored', path)
        assert.equal(after.body, BODY)
        assert.deepEqual(
          origin.requests.filter((r) => r.url === path).map((r) => r.method),
          ['GET', 'HEAD', 'GET'],
        )
      }
    })
  })
}
