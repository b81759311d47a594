/**
 * RFC 9111 §4: a response answers several requests (collapsed) only where it may be reused for each of
 * them without validation. A `no-cache` response, one stale on arrival, or a request that asks for the
 * origin's answer to itself (no-cache, max-age=0: fetch()'s reload, no-store and no-cache modes) makes
 * each such request ask the origin itself. Found by review helper 139.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { makeAgent, send, sleep, storeKinds } from '../helpers/client.js'
import { type Origin, startOrigin } from '../helpers/origin.js'

const DELAY_MS = 150

for (const kind of storeKinds) {
  describe(`what waits on an identical request may be reused (${kind.name})`, () => {
    let origin: Origin
    let cache: ReturnType<typeof makeAgent>
    /** The version of /doc the origin serves now. */
    let version = 1

    before(async () => {
      origin = await startOrigin((req, res) => {
        const path = new URL(req.url ?? '/', 'http://x').pathname
        if (path === '/doc') {
          // its headers at once, its body over ~480 ms (a large download; version 2's over ~60 ms)
          const current = String(version)
          const paceMs = current === '1' ? 80 : 10
          res.writeHead(200, { 'cache-control': 'max-age=600', 'content-length': '6' })
          let sent = 0
          const next = () => {
            res.write(current)
            if (++sent === 6) return void res.end()
            setTimeout(next, paceMs)
          }
          return next()
        }
        // a per-user page (by Cookie) that must be validated on every use, or is stale on arrival
        const user = String(req.headers.cookie ?? 'nobody')
        const cacheControl =
          path === '/max-age-0' ? 'max-age=0' : path === '/fresh' ? 'max-age=60' : 'no-cache'
        const headers = { 'cache-control': cacheControl, etag: `"${user}"` }
        setTimeout(() => {
          if (req.headers['if-none-match'] === `"${user}"`) {
            res.writeHead(304, headers)
            return void res.end()
          }
          res.writeHead(200, headers)
          res.end(`page of ${user}`)
        }, DELAY_MS)
      })
      cache = makeAgent(kind.make())
    })
    after(async () => {
      await cache.close()
      await origin.close()
    })

    /** Alice asks, then Bob 20 ms later, each with their own Cookie. */
    async function aliceThenBob(url: string) {
      const alice = send(cache.agent, url, { headers: { cookie: 'session=alice' } })
      await sleep(20)
      const bob = send(cache.agent, url, { headers: { cookie: 'session=bob' } })
      return Promise.all([alice, bob])
    }

    for (const path of ['/no-cache', '/max-age-0']) {
      test(`a ${path.slice(1)} response fetched for one request is not handed to another waiting on it`, async () => {
        const url = `${origin.url}${path}?miss`
        const [alice, bob] = await aliceThenBob(url)
        assert.equal(alice.body, 'page of session=alice')
        assert.equal(alice.headers['cache-status'], 'undici-cache; fwd=miss; stored')
        assert.equal(bob.body, 'page of session=bob')
        // let go as Alice's response starts, Bob looks up again: her entry, if her body was in by then
        // (the origin sends it in the same packet), which he revalidates with his own Cookie
        assert.match(String(bob.headers['cache-status']), /^undici-cache; fwd=(miss|stale); stored$/)
        assert.equal(origin.count(`${path}?miss`), 2)
      })
    }

    test('concurrent revalidations of a no-cache entry each reach the origin, with their own Cookie', async () => {
      const url = `${origin.url}/no-cache?revalidated`
      assert.equal(
        (await send(cache.agent, url, { headers: { cookie: 'session=alice' } })).body,
        'page of session=alice',
      )
      const [alice, bob] = await aliceThenBob(url)
      assert.equal(alice.body, 'page of session=alice')
      assert.equal(alice.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
      assert.equal(bob.body, 'page of session=bob')
      assert.equal(bob.headers['cache-status'], 'undici-cache; fwd=stale; stored')
      const seen = origin.requests.filter((seen) => seen.url === '/no-cache?revalidated')
      assert.deepEqual(
        seen.map((seen) => seen.headers.cookie),
        ['session=alice', 'session=alice', 'session=bob'],
      )
    })

    test('a fresh response is still handed to the requests waiting on it (one origin request)', async () => {
      const url = `${origin.url}/fresh?collapsed`
      const [first, second] = await aliceThenBob(url)
      assert.equal(first.body, 'page of session=alice')
      assert.equal(first.headers['cache-status'], 'undici-cache; fwd=miss; stored; collapsed')
      assert.equal(second.body, 'page of session=alice')
      assert.equal(second.headers['cache-status'], 'undici-cache; fwd=miss; collapsed')
      assert.equal(origin.count('/fresh?collapsed'), 1)
    })

    const asksOwn: [label: string, cacheControl: string][] = [
      ['no-cache (reload)', 'no-cache'],
      ['max-age=0', 'max-age=0'],
    ]
    for (const [label, cacheControl] of asksOwn) {
      test(`a request with ${label} made while an older response downloads gets the origin's answer to itself`, async () => {
        version = 1
        const url = `${origin.url}/doc?${encodeURIComponent(label)}`
        const first = await request(url, { dispatcher: cache.agent })
        version = 2
        await sleep(20)
        const again = await send(cache.agent, url, { headers: { 'cache-control': cacheControl } })
        assert.equal(await first.body.text(), '111111')
        assert.equal(again.body, '222222')
        // nothing stored yet: a miss, sent at once rather than waiting on the older download
        assert.equal(again.headers['cache-status'], 'undici-cache; fwd=miss; stored')
        // the older download ended last: the answer to the request made last is the one kept
        const later = await send(cache.agent, url)
        assert.equal(later.body, '222222')
        assert.match(String(later.headers['cache-status']), /^undici-cache; hit; ttl=\d+$/)
        assert.equal(origin.count(`/doc?${encodeURIComponent(label)}`), 2)
      })
    }

    test('a first caller whose only waiter (a Range) asks the origin itself does not say collapsed (review helper 141)', async () => {
      const url = `${origin.url}/no-cache?ranged`
      const first = send(cache.agent, url)
      await sleep(20)
      const ranged = await send(cache.agent, url, { headers: { range: 'bytes=0-3' } })
      assert.equal((await first).body, 'page of nobody')
      assert.equal((await first).headers['cache-status'], 'undici-cache; fwd=miss; stored')
      assert.equal(ranged.status, 206)
      assert.equal(ranged.body, 'page')
      assert.equal(origin.count('/no-cache?ranged'), 2)
    })

    for (const cacheControl of ['no-cache', 'max-age=0']) {
      test(`a request with ${cacheControl} leads a flight: a plain one made meanwhile is served its fresh answer (review helper 141)`, async () => {
        const url = `${origin.url}/fresh?led-by-${cacheControl}`
        const own = send(cache.agent, url, { headers: { 'cache-control': cacheControl } })
        await sleep(20)
        const plain = await send(cache.agent, url)
        assert.equal((await own).body, 'page of nobody')
        assert.equal((await own).headers['cache-status'], 'undici-cache; fwd=miss; stored; collapsed')
        assert.equal(plain.body, 'page of nobody')
        assert.equal(plain.headers['cache-status'], 'undici-cache; fwd=miss; collapsed')
        assert.equal(origin.count(`/fresh?led-by-${cacheControl}`), 1)
      })
    }

    test('a waiter whose min-fresh the response cannot meet asks the origin itself', async () => {
      version = 3
      const url = `${origin.url}/doc?min-fresh`
      const first = send(cache.agent, url)
      await sleep(20)
      const waiter = await send(cache.agent, url, { headers: { 'cache-control': 'min-fresh=900' } })
      assert.equal((await first).body, '333333')
      assert.equal(waiter.body, '333333')
      // it joined once the response had started: it waited for the entry, which it may not reuse
      assert.equal(waiter.headers['cache-status'], 'undici-cache; fwd=request; stored')
      assert.equal(origin.count('/doc?min-fresh'), 2)
    })
  })
}
