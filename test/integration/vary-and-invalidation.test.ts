import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Dispatcher } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { CacheStore, StoredEntry } from '../../lib/stores/store.js'
import { AsyncStore } from '../helpers/async-store.js'
import { makeAgent, send, sleep, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

for (const kind of storeKinds) {
  describe(`Vary and invalidation (${kind.name})`, () => {
    let origin: Origin
    let cache: ReturnType<typeof makeAgent>

    before(async () => {
      origin = await startOrigin((req, res) => {
        const path = req.url ?? '/'
        const language = String(req.headers['accept-language'] ?? 'none')
        if (path === '/vary') {
          return reply(res, 200, { 'cache-control': 'max-age=60', vary: 'Accept-Language' }, `in ${language}`)
        }
        if (path === '/vary-added' || path === '/vary-added-head') {
          // the first answer has no Vary (stored, stale at once); the origin's later ones vary on X-User
          const user = String(req.headers['x-user'] ?? 'nobody')
          if (req.headers['if-none-match'] === '"v1"' || req.method === 'HEAD') {
            return reply(res, req.method === 'HEAD' ? 200 : 304, {
              etag: '"v1"',
              'cache-control': 'max-age=60',
              vary: 'X-User',
            })
          }
          const headers: Record<string, string> = { etag: '"v1"', 'cache-control': 'max-age=0' }
          if (origin.count(path) > 1) headers.vary = 'X-User'
          return reply(res, 200, headers, `for ${user}`)
        }
        if (path.startsWith('/siblings')) {
          // en and fr share one validator (strong, or weak for -weak); de has its own
          const tag = language === 'de' ? '"de"' : '"same"'
          const etag = path === '/siblings-weak' ? `W/${tag}` : tag
          // -new-vary: the 304 names one more selecting field, whose values the other variants lack
          const vary = path === '/siblings-new-vary' ? 'Accept-Language, X-User' : 'Accept-Language'
          if (req.headers['if-none-match'] === etag)
            return reply(res, 304, { etag, 'cache-control': 'max-age=60', vary })
          const headers = { etag, 'cache-control': 'max-age=0', vary: 'Accept-Language' }
          return reply(res, 200, headers, `in ${language}`)
        }
        if (path === '/vary-star')
          return reply(res, 200, { 'cache-control': 'max-age=60', vary: '*' }, 'star')
        if (req.method === 'POST' && path === '/items') {
          return reply(res, 201, {
            location: '/items/1',
            'content-location': `${'http://elsewhere.test'}/items`,
          })
        }
        if (req.method === 'DELETE') return reply(res, 500, {})
        reply(res, 200, { 'cache-control': 'max-age=60' }, `${path} content`)
      })
      cache = makeAgent(kind.make())
    })
    after(async () => {
      await cache.close()
      await origin.close()
    })

    test('variants selected by Vary are kept side by side (RFC 9111 §4.1)', async () => {
      const en = await send(cache.agent, `${origin.url}/vary`, { headers: { 'accept-language': 'en' } })
      const fr = await send(cache.agent, `${origin.url}/vary`, { headers: { 'accept-language': 'fr' } })
      assert.equal(fr.headers['cache-status'], 'undici-cache; fwd=vary-miss; stored')
      const none = await send(cache.agent, `${origin.url}/vary`)
      const enAgain = await send(cache.agent, `${origin.url}/vary`, { headers: { 'accept-language': 'en' } })
      const frAgain = await send(cache.agent, `${origin.url}/vary`, { headers: { 'accept-language': 'fr' } })
      const noneAgain = await send(cache.agent, `${origin.url}/vary`)
      assert.deepEqual(
        [en.body, fr.body, none.body, enAgain.body, frAgain.body, noneAgain.body],
        ['in en', 'in fr', 'in none', 'in en', 'in fr', 'in none'],
      )
      assert.match(String(frAgain.headers['cache-status']), /^undici-cache; hit/)
      assert.equal(origin.count('/vary'), 3)
    })

    test('a Vary that a 304 or a HEAD answer adds selects by the validating request (RFC 9111 §4.1)', async () => {
      for (const path of ['/vary-added', '/vary-added-head']) {
        const url = `${origin.url}${path}`
        const alice = { 'x-user': 'alice' }
        await send(cache.agent, url, { headers: alice })
        const validated = await send(cache.agent, url, {
          headers: alice,
          method: path === '/vary-added' ? 'GET' : 'HEAD',
        })
        assert.equal(validated.headers.vary, 'X-User')
        const bob = await send(cache.agent, url, { headers: { 'x-user': 'bob' } })
        assert.equal(bob.body, 'for bob')
        assert.equal(bob.headers['cache-status'], 'undici-cache; fwd=vary-miss; stored')
        const aliceAgain = await send(cache.agent, url, { headers: alice })
        assert.equal(aliceAgain.body, 'for alice')
        assert.match(String(aliceAgain.headers['cache-status']), /^undici-cache; hit/)
        assert.equal(origin.count(path), 3)
      }
    })

    test("a 304's strong validator freshens every variant that has it, unless weak or naming another Vary (RFC 9111 §4.3.4)", async () => {
      for (const path of ['/siblings', '/siblings-weak', '/siblings-new-vary']) {
        const get = (language: string) =>
          send(cache.agent, `${origin.url}${path}`, { headers: { 'accept-language': language } })
        for (const language of ['en', 'fr', 'de']) await get(language)
        const en = await get('en')
        assert.equal(en.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
        assert.equal(origin.count(path), 4)
        const fr = await get('fr')
        const de = await get('de')
        assert.deepEqual([en.body, fr.body, de.body], ['in en', 'in fr', 'in de'])
        assert.equal(de.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
        if (path === '/siblings') {
          assert.match(String(fr.headers['cache-status']), /^undici-cache; hit; ttl=(58|59|60)$/)
          assert.equal(origin.count(path), 5)
        } else {
          assert.equal(fr.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
          assert.equal(origin.count(path), 6)
        }
      }
    })

    test('Vary: * is never served from the cache', async () => {
      await send(cache.agent, `${origin.url}/vary-star`)
      const second = await send(cache.agent, `${origin.url}/vary-star`)
      assert.equal(second.headers['cache-status'], 'undici-cache; fwd=miss; detail=vary-star')
      assert.equal(origin.count('/vary-star'), 2)
    })

    test('a successful POST invalidates its URI and same-origin Location (RFC 9111 §4.4)', async () => {
      await send(cache.agent, `${origin.url}/items`)
      await send(cache.agent, `${origin.url}/items/1`)
      await send(cache.agent, `${origin.url}/items`)
      await send(cache.agent, `${origin.url}/items/1`)
      assert.equal(origin.count('/items/1'), 1)
      const created = await send(cache.agent, `${origin.url}/items`, { method: 'POST' })
      assert.equal(created.status, 201)
      assert.equal(created.headers['cache-status'], 'undici-cache; fwd=method')
      const list = await send(cache.agent, `${origin.url}/items`)
      const item = await send(cache.agent, `${origin.url}/items/1`)
      assert.equal(list.headers['cache-status'], 'undici-cache; fwd=miss; stored')
      assert.equal(item.headers['cache-status'], 'undici-cache; fwd=miss; stored')
      assert.equal(origin.requests.filter((r) => r.method === 'GET' && r.url === '/items').length, 2)
      assert.equal(origin.count('/items/1'), 2)
    })

    test('a write whose target is in absolute form invalidates that URI, with its query, by name or address (RFC 9112 §3.2.2, RFC 9111 §4.4)', async () => {
      const named = (path: string) => `http://vh.example:${new URL(origin.url).port}${path}`
      const cases = [
        { path: '/absolute', written: `${origin.url}/absolute` },
        { path: '/absolute-query?q=1', written: `${origin.url}/absolute-query`, query: { q: '1' } },
        { path: '/absolute-named', written: named('/absolute-named'), host: new URL(named('/')).host },
      ]
      for (const { path, written, query, host } of cases) {
        const get = () => send(cache.agent, `${origin.url}${path}`, { headers: host ? { host } : undefined })
        await get()
        assert.match(String((await get()).headers['cache-status']), /^undici-cache; hit/, path)
        const put = await cache.agent.request({ origin: origin.url, path: written, query, method: 'PUT' })
        await put.body.dump()
        assert.equal(put.statusCode, 200)
        assert.equal((await get()).headers['cache-status'], 'undici-cache; fwd=miss; stored', path)
        const seen = origin.requests.filter((r) => r.url.endsWith(path)).map((r) => r.method)
        assert.deepEqual(seen, ['GET', 'PUT', 'GET'], path)
      }
    })

    test('one entry however the URI is percent-encoded: a write to one spelling invalidates it (RFC 9110 §4.2.3)', async () => {
      await send(cache.agent, `${origin.url}/spelt`)
      const encoded = await send(cache.agent, `${origin.url}/sp%65lt`)
      assert.match(String(encoded.headers['cache-status']), /^undici-cache; hit/)
      assert.equal(encoded.body, '/spelt content')
      const put = await send(cache.agent, `${origin.url}/%73pelt`, { method: 'PUT' })
      assert.equal(put.status, 200)
      const after = await send(cache.agent, `${origin.url}/spelt`)
      assert.equal(after.headers['cache-status'], 'undici-cache; fwd=miss; stored')
      assert.deepEqual(
        origin.requests.filter((r) => r.url.endsWith('pelt')).map((r) => `${r.method} ${r.url}`),
        ['GET /spelt', 'PUT /%73pelt', 'GET /spelt'],
      )
    })

    test('an error response to an unsafe method invalidates nothing', async () => {
      await send(cache.agent, `${origin.url}/kept`)
      const deleted = await send(cache.agent, `${origin.url}/kept`, { method: 'DELETE' })
      assert.equal(deleted.status, 500)
      const after = await send(cache.agent, `${origin.url}/kept`)
      assert.match(String(after.headers['cache-status']), /^undici-cache; hit/)
      assert.equal(origin.requests.filter((r) => r.method === 'GET' && r.url === '/kept').length, 1)
    })
  })
}

for (const kind of storeKinds) {
  describe(`a write while a GET for the same URI is on its way (${kind.name})`, () => {
    let origin: Origin
    let cache: ReturnType<typeof makeAgent>
    let value = 1

    before(async () => {
      origin = await startOrigin((req, res) => {
        if (req.method === 'POST') {
          value++
          return reply(res, 200, {}, 'written')
        }
        const read = value // the origin reads its state when the request arrives
        const headers = { 'cache-control': 'max-age=60' }
        if (req.url?.startsWith('/slow-headers'))
          return setTimeout(() => reply(res, 200, headers, `value=${read}`), 300)
        res.writeHead(200, headers)
        res.write(`value=${read}`)
        setTimeout(() => res.end(), 300)
      })
      cache = makeAgent(kind.make())
    })
    after(async () => {
      await cache.close()
      await origin.close()
    })

    for (const path of ['/slow-headers', '/slow-body']) {
      test(`${path}: a GET sent after the POST completed sees the write, and the earlier response is not stored (RFC 9111 §4.4)`, async () => {
        const earlier = send(cache.agent, `${origin.url}${path}`)
        await new Promise((resolve) => setTimeout(resolve, 100))
        const write = await send(cache.agent, `${origin.url}${path}`, { method: 'POST' })
        assert.equal(write.status, 200)
        const later = await send(cache.agent, `${origin.url}${path}`)
        const first = await earlier
        const again = await send(cache.agent, `${origin.url}${path}`)
        assert.deepEqual(
          [first.body, later.body, again.body],
          [`value=${value - 1}`, `value=${value}`, `value=${value}`],
        )
        assert.equal(later.headers['cache-status'], 'undici-cache; fwd=miss; stored')
        assert.match(String(again.headers['cache-status']), /^undici-cache; hit/)
        assert.equal(origin.requests.filter((seen) => seen.url === path && seen.method === 'GET').length, 2)
        if (path === '/slow-headers')
          assert.equal(first.headers['cache-status'], 'undici-cache; fwd=miss; detail=invalidated')
      })
    }

    test('two CacheAgents on one store: a write through one stops what the other has on its way', async () => {
      const other = new CacheAgent({ store: cache.store })
      try {
        const url = `${origin.url}/slow-headers-two-agents`
        const earlier = send(other, url)
        await sleep(100)
        assert.equal((await send(cache.agent, url, { method: 'POST' })).status, 200)
        const later = await send(other, url)
        const first = await earlier
        assert.equal(first.body, `value=${value - 1}`)
        assert.equal(first.headers['cache-status'], 'undici-cache; fwd=miss; detail=invalidated')
        assert.equal(later.body, `value=${value}`)
        assert.equal(later.headers['cache-status'], 'undici-cache; fwd=miss; stored')
        const again = await send(cache.agent, url)
        assert.equal(again.body, `value=${value}`)
        assert.match(String(again.headers['cache-status']), /^undici-cache; hit/)
        const gets = origin.requests.filter(
          (seen) => seen.url === '/slow-headers-two-agents' && seen.method === 'GET',
        )
        assert.equal(gets.length, 2)
      } finally {
        await other.close()
      }
    })

    test('a GET that waits on no flight (its own If-Match) and is answered after a write is not stored either', async () => {
      const earlier = send(cache.agent, `${origin.url}/slow-headers-alone`, { headers: { 'if-match': '*' } })
      await new Promise((resolve) => setTimeout(resolve, 100))
      await send(cache.agent, `${origin.url}/slow-headers-alone`, { method: 'POST' })
      const first = await earlier
      assert.equal(first.body, `value=${value - 1}`)
      assert.equal(first.headers['cache-status'], 'undici-cache; fwd=miss; detail=invalidated')
      const later = await send(cache.agent, `${origin.url}/slow-headers-alone`)
      assert.equal(later.body, `value=${value}`)
      assert.equal(later.headers['cache-status'], 'undici-cache; fwd=miss; stored')
    })
  })
}

/** An asynchronous store that answers a delete 100 ms late, and lookups sent meanwhile at once. */
class LateDeletes extends AsyncStore {
  override async delete(key: string): Promise<void> {
    await sleep(100)
    await super.delete(key)
  }
}

/**
 * An asynchronous store that deletes 50 ms late, and answers each lookup 100 ms late with what it found
 * when sent (as Redis answers a lookup sent behind a delete it re-sends): the delete settles first.
 */
class LateLookups extends AsyncStore {
  override async get(key: string): Promise<StoredEntry[]> {
    const found = await super.get(key)
    await sleep(100)
    return found
  }

  override async delete(key: string): Promise<void> {
    await sleep(50)
    await super.delete(key)
  }
}

/**
 * Through a CacheAgent on `store`: a GET stored, its hit, a POST, and the GET right after it, which must
 * reach the origin and be stored; then `more` with that agent and URL.
 */
async function getAfterPost(
  store: CacheStore,
  more: (agent: Dispatcher, url: string, origin: Origin) => Promise<void>,
): Promise<void> {
  let value = 1
  const origin = await startOrigin((req, res) => {
    if (req.method === 'POST') value++
    reply(res, 200, { 'cache-control': 'max-age=60' }, `value=${value}`)
  })
  const cache = makeAgent(store)
  try {
    const url = `${origin.url}/doc`
    await send(cache.agent, url)
    assert.match(String((await send(cache.agent, url)).headers['cache-status']), /^undici-cache; hit;/)
    assert.equal((await send(cache.agent, url, { method: 'POST' })).body, 'value=2')
    const after = await send(cache.agent, url)
    assert.deepEqual(
      [after.body, after.headers['cache-status']],
      ['value=2', 'undici-cache; fwd=miss; stored'],
    )
    assert.equal(origin.count('/doc'), 3)
    await more(cache.agent, url, origin)
  } finally {
    await cache.close()
    await origin.close()
  }
}

test('a GET sent after a POST completed is not served what the POST invalidated, when its lookup is answered after the delete settled (RFC 9111 §4.4)', async () => {
  await getAfterPost(new LateLookups(new MemoryStore()), async (agent, url, origin) => {
    const last = await send(agent, url)
    assert.equal(last.body, 'value=2')
    assert.match(String(last.headers['cache-status']), /^undici-cache; hit; ttl=(58|59|60)$/)
    assert.equal(origin.count('/doc'), 3)
  })
})

test('a GET sent after a POST completed is not served what the POST invalidated while the store is still deleting it (RFC 9111 §4.4)', async () => {
  await getAfterPost(new LateDeletes(new MemoryStore()), async (agent, url, origin) => {
    await sleep(150)
    // a store deletes by key: the late delete took the newer entry too, so this one is a miss again
    const last = await send(agent, url)
    assert.deepEqual([last.body, last.headers['cache-status']], ['value=2', 'undici-cache; fwd=miss; stored'])
    assert.equal(origin.count('/doc'), 4)
  })
})
