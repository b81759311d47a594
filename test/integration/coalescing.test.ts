import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { type Dispatcher, request } from 'undici'
import { Flight } from '../../lib/flights.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { makeAgent, send, sleep, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin, twoMinutesAgo } from '../helpers/origin.js'
import { firstCallerLeaves } from './coalescing-callers.js'

const DELAY_MS = 150

for (const kind of storeKinds) {
  describe(`request coalescing (${kind.name})`, () => {
    let origin: Origin
    let cache: ReturnType<typeof makeAgent>

    before(async () => {
      origin = await startOrigin((req, res) => {
        const path = req.url ?? '/'
        const language = String(req.headers['accept-language'] ?? 'none')
        const headers: Record<string, string> = { 'cache-control': 'max-age=60' }
        if (path.startsWith('/vary')) headers.vary = 'accept-language'
        if (path === '/private') headers['cache-control'] = 'private, max-age=60'
        if (path === '/cookie') headers['set-cookie'] = 'id=1'
        // stale on arrival, revalidated for several requests at once (see twoMinutesAgo, collapse-reuse)
        if (path.startsWith('/stale')) {
          headers.etag = `"${path}"`
          if (path.endsWith('-versioned')) headers['x-version'] = String(origin.count(path))
          if (req.headers['if-none-match'] === headers.etag)
            return setTimeout(() => reply(res, 304, headers), DELAY_MS)
          headers.date = twoMinutesAgo()
        }
        setTimeout(() => reply(res, 200, headers, `${path} in ${language}`), DELAY_MS)
      })
      cache = makeAgent(kind.make())
    })
    after(async () => {
      await cache.close()
      await origin.close()
    })

    const burst = (path: string, count: number, headers?: (i: number) => Record<string, string>) =>
      Promise.all(
        Array.from({ length: count }, (_, i) =>
          send(cache.agent, `${origin.url}${path}`, { headers: headers?.(i) }),
        ),
      )

    test('100 concurrent misses make one origin request; every caller gets the whole body', async () => {
      const replies = await burst('/burst', 100)
      assert.equal(origin.count('/burst'), 1)
      assert.deepEqual(new Set(replies.map((r) => r.body)), new Set(['/burst in none']))
      const statuses = replies.map((r) => String(r.headers['cache-status']))
      assert.equal(statuses.filter((s) => s === 'undici-cache; fwd=miss; stored; collapsed').length, 1)
      assert.equal(statuses.filter((s) => s === 'undici-cache; fwd=miss; collapsed').length, 99)
    })

    test('a waiter whose request differs in a Vary header is not served the other response', async () => {
      const replies = await burst('/vary', 20, (i) => ({ 'accept-language': i % 2 === 0 ? 'en' : 'fr' }))
      assert.equal(origin.count('/vary'), 2)
      for (const [i, r] of replies.entries()) assert.equal(r.body, `/vary in ${i % 2 === 0 ? 'en' : 'fr'}`)
    })

    test('a first caller whose only waiter selects another variant does not say collapsed (RFC 9211 §2.6)', async () => {
      const [en, fr] = await burst('/vary-pair', 2, (i) => ({ 'accept-language': i === 0 ? 'en' : 'fr' }))
      assert.equal(origin.count('/vary-pair'), 2)
      assert.deepEqual(
        [en?.headers['cache-status'], fr?.headers['cache-status']],
        ['undici-cache; fwd=miss; stored', 'undici-cache; fwd=vary-miss; stored'],
      )
    })

    test('responses that turn out not storable are not handed to waiters', async () => {
      const privates = await burst('/private', 10)
      assert.equal(origin.count('/private'), 10)
      const cookies = await burst('/cookie', 10)
      assert.equal(origin.count('/cookie'), 10)
      for (const r of cookies) assert.equal(r.headers['set-cookie'], 'id=1')
      // RFC 9211 §2.6: none was shared, the first caller's included
      for (const r of [...privates, ...cookies])
        assert.doesNotMatch(String(r.headers['cache-status']), /collapsed/)
    })

    test('GETs do not wait on a HEAD in flight (its answer stores nothing they could use)', async () => {
      const head = send(cache.agent, `${origin.url}/mixed`, { method: 'HEAD' })
      const gets = await burst('/mixed', 10)
      assert.equal((await head).status, 200)
      for (const r of gets) assert.equal(r.body, '/mixed in none')
      assert.equal(origin.requests.filter((r) => r.url === '/mixed' && r.method === 'HEAD').length, 1)
      assert.equal(origin.requests.filter((r) => r.url === '/mixed' && r.method === 'GET').length, 1)
    })

    test('per-request options survive the wait (a custom key here)', async () => {
      const keyed = await Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          send(cache.agent, `${origin.url}/keyed-${i}`, { cache: { key: 'shared-key' } }),
        ),
      )
      for (const r of keyed) assert.equal(r.body, '/keyed-0 in none')
      assert.equal(origin.requests.filter((r) => r.url.startsWith('/keyed-')).length, 1)
    })

    test('concurrent revalidations of one stale entry make one conditional request', async () => {
      await send(cache.agent, `${origin.url}/stale`)
      const replies = await burst('/stale', 30)
      assert.equal(origin.count('/stale'), 2)
      assert.equal(origin.requests.at(-1)?.headers['if-none-match'], '"/stale"')
      for (const r of replies) {
        assert.equal(r.body, '/stale in none')
        assert.match(String(r.headers.age), /^[01]$/, 'a response just validated is served with its new age')
      }
      const statuses = replies.map((r) => String(r.headers['cache-status']))
      assert.equal(
        statuses.filter((s) => s === 'undici-cache; fwd=stale; fwd-status=304; collapsed').length,
        30,
        'the leader and its waiters were all served what the 304 validated (RFC 9211 §2.3)',
      )
    })

    test('waiters on a revalidation whose 304 is written back say fwd-status=304 too', async () => {
      await send(cache.agent, `${origin.url}/stale-versioned`)
      const replies = await burst('/stale-versioned', 20)
      assert.equal(origin.count('/stale-versioned'), 2)
      for (const r of replies) {
        assert.equal(r.body, '/stale-versioned in none')
        assert.equal(r.headers['x-version'], '2', 'served with the headers the 304 brought')
        assert.equal(r.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304; collapsed')
      }
    })

    test('a first caller that aborts before the response starts is rejected at once; its waiters are served by the same download', async () => {
      for (const headers of [{}, { range: 'bytes=0-3' }] as Record<string, string>[]) {
        const path = `/abort-leader-${Object.keys(headers).length}`
        const startedMs = performance.now()
        const { replies } = await firstCallerLeaves(cache.agent, `${origin.url}${path}`, () => [
          send(cache.agent, `${origin.url}${path}`),
          send(cache.agent, `${origin.url}${path}`, { headers }),
        ])
        assert.ok(performance.now() - startedMs < DELAY_MS, 'rejected before the origin answered')
        const [plain, other] = await replies
        assert.equal(plain?.body, `${path} in none`)
        assert.equal(plain?.headers['cache-status'], 'undici-cache; fwd=miss; collapsed')
        assert.equal(other?.body, 'range' in headers ? `${path}`.slice(0, 4) : `${path} in none`)
        assert.equal(origin.count(path), 1)
        assert.match(
          String((await send(cache.agent, `${origin.url}${path}`)).headers['cache-status']),
          /; hit/,
        )
      }
    })

    test('a revalidating first caller that leaves before the 304: its waiters are served what the 304 validated', async () => {
      await send(cache.agent, `${origin.url}/stale-left`)
      const before = origin.count('/stale-left')
      const url = `${origin.url}/stale-left`
      const { replies } = await firstCallerLeaves(cache.agent, url, () => [
        send(cache.agent, url),
        send(cache.agent, url),
      ])
      for (const waiter of await replies) {
        assert.equal(waiter.body, '/stale-left in none')
        assert.equal(waiter.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304; collapsed')
      }
      assert.equal(origin.count('/stale-left'), before + 1)
    })

    test('a waiter that aborts is rejected at once with its reason; the others are served', async () => {
      for (const headers of [{}, { range: 'bytes=0-3' }]) {
        const path = `/abort-waiter-${Object.keys(headers).length}`
        const leader = send(cache.agent, `${origin.url}${path}`)
        const controller = new AbortController()
        const startedMs = performance.now()
        const aborted = request(`${origin.url}${path}`, {
          dispatcher: cache.agent,
          signal: controller.signal,
          headers,
        })
        const other = send(cache.agent, `${origin.url}${path}`)
        setTimeout(() => controller.abort(new Error('gave up')), 20)
        await assert.rejects(aborted, { message: 'gave up' })
        assert.ok(performance.now() - startedMs < DELAY_MS, 'rejected before the origin answered')
        assert.equal((await leader).body, `${path} in none`)
        assert.equal((await other).body, `${path} in none`)
        assert.equal(origin.count(path), 1)
      }
    })
  })
}

describe('a settled flight', () => {
  // A dead flight can outlive its request in a young-generation GC (held by an old, dead object):
  // its join hook, a closure over the first caller's handler, kept each stored miss's objects alive
  // through GC after GC (20 µs a request at concurrency 64). Settling lets go of the hook.
  test('lets go of its join hook, and what that hook holds', async () => {
    setFlagsFromString('--expose-gc')
    const collect = runInNewContext('gc') as () => void
    const flight = new Flight(Date.now(), 0, () => {})
    let handler: { name: string } | undefined = { name: 'first caller' }
    const held = new WeakRef(handler)
    flight.onJoin = (
      (captured) => () =>
        captured.name
    )(handler)
    handler = undefined
    flight.settle('stored')
    await new Promise(setImmediate) // a WeakRef holds its target until the current job ends
    collect()
    assert.equal(flight.onJoin, undefined)
    assert.equal(held.deref(), undefined)
  })
})

test('a waiter whose onRequestStart throws gets the throw as its onResponseError, like any request', async () => {
  const slow = await startOrigin((_req, res) =>
    setTimeout(() => reply(res, 200, { 'cache-control': 'max-age=60' }, 'late'), 100),
  )
  const cache = makeAgent(new MemoryStore())
  const leader = send(cache.agent, `${slow.url}/w`)
  const error = await new Promise<Error>((resolve) => {
    cache.agent.dispatch(
      { origin: slow.url, path: '/w', method: 'GET' },
      {
        onRequestStart() {
          throw new Error('boom')
        },
        onResponseError: (_controller, thrown) => resolve(thrown),
      },
    )
  })
  assert.equal(error.message, 'boom')
  assert.equal((await leader).body, 'late')
  assert.equal(slow.count('/w'), 1)
  await cache.close()
  await slow.close()
})

test("a request waiting on an identical one keeps its own headersTimeout: it fails as undici's would, the first is answered", async () => {
  const slow = await startOrigin((_req, res) => {
    setTimeout(() => reply(res, 200, { 'cache-control': 'max-age=60' }, 'late page'), 1200)
  })
  const cache = makeAgent(new MemoryStore())
  try {
    const url = `${slow.url}/late`
    const first = send(cache.agent, url)
    await sleep(50)
    const startedMs = performance.now()
    const waiter = request(url, { dispatcher: cache.agent, headersTimeout: 300 })
    await assert.rejects(waiter, { code: 'UND_ERR_HEADERS_TIMEOUT' })
    const waitedMs = performance.now() - startedMs
    assert.ok(waitedMs >= 290 && waitedMs < 1000, `failed after ${Math.round(waitedMs)} ms`)
    assert.equal((await first).body, 'late page')
    assert.equal((await send(cache.agent, url)).body, 'late page')
    assert.equal(slow.count('/late'), 1)
  } finally {
    await cache.close()
    await slow.close()
  }
})

test('a request that joins once the first has its headers is not timed out by its headersTimeout while the body comes', async () => {
  const slowBody = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '9' })
    res.write('slow ')
    setTimeout(() => res.end('body'), 900)
  })
  const cache = makeAgent(new MemoryStore())
  try {
    const url = `${slowBody.url}/slow-body`
    const first = send(cache.agent, url)
    await sleep(200)
    const joined = await request(url, { dispatcher: cache.agent, headersTimeout: 300 })
    assert.equal(await joined.body.text(), 'slow body')
    assert.equal((await first).body, 'slow body')
    assert.equal(slowBody.count('/slow-body'), 1)
  } finally {
    await cache.close()
    await slowBody.close()
  }
})

/**
 * A first caller and a request fed its response live (with `options`, its own request options) from
 * an origin that sends `first ` at once and `rest` after `stallMs`; `check` reads the fed one. The
 * first caller reads on, and the origin sees one request.
 */
async function fedWhileStalling(
  stallMs: number,
  options: { bodyTimeout: number; highWaterMark?: number },
  check: (fed: Dispatcher.ResponseData, again: () => Promise<string>) => Promise<void>,
) {
  const stalling = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '10' })
    res.write('first ')
    setTimeout(() => res.end('rest'), stallMs)
  })
  const cache = makeAgent(new MemoryStore())
  try {
    const url = `${stalling.url}/stall`
    const first = send(cache.agent, url)
    const fed = await request(url, { dispatcher: cache.agent, ...options })
    assert.equal(fed.statusCode, 200)
    await check(fed, async () => (await send(cache.agent, url)).body)
    assert.equal((await first).body, 'first rest')
    assert.equal(stalling.count('/stall'), 1)
  } finally {
    await cache.close()
    await stalling.close()
  }
}

/** Reads `fed` to its error, which must come 250–1200 ms from now. */
async function timesOutSoon(fed: Dispatcher.ResponseData): Promise<void> {
  const startedMs = performance.now()
  await assert.rejects(fed.body.text(), { code: 'UND_ERR_BODY_TIMEOUT' })
  const waitedMs = performance.now() - startedMs
  assert.ok(waitedMs >= 250 && waitedMs < 1200, `failed after ${Math.round(waitedMs)} ms`)
}

test("a request fed an identical one's response keeps its own bodyTimeout: a stall that long fails it as undici's would, the first reads on", async () => {
  await fedWhileStalling(1500, { bodyTimeout: 300 }, async (fed, again) => {
    await timesOutSoon(fed)
    assert.equal(await again(), 'first rest')
  })
})

test("a fed request's bodyTimeout does not run while it pauses", async () => {
  // highWaterMark 1: the first chunk pauses it until it is read
  await fedWhileStalling(700, { bodyTimeout: 300, highWaterMark: 1 }, async (fed) => {
    await sleep(550)
    assert.equal(await fed.body.text(), 'first rest')
  })
})

test("a fed request's bodyTimeout counts again from its resume", async () => {
  await fedWhileStalling(2000, { bodyTimeout: 300, highWaterMark: 1 }, async (fed) => {
    await sleep(500)
    await timesOutSoon(fed)
  })
})

test('a request waiting on a revalidation the origin answered with an error is served the stale entry, whatever its headersTimeout', async () => {
  let failing = false
  const flaky = await startOrigin((_req, res) => {
    if (!failing)
      return reply(res, 200, { 'cache-control': 'max-age=1, stale-if-error=3600', etag: '"v1"' }, 'old page')
    res.writeHead(503, { 'content-length': '10' })
    res.write('down ')
    setTimeout(() => res.end('down.'), 800)
  })
  const cache = makeAgent(new MemoryStore())
  try {
    const url = `${flaky.url}/flaky`
    await send(cache.agent, url)
    await sleep(1100)
    failing = true
    const first = send(cache.agent, url)
    await sleep(50)
    const waiter = await request(url, { dispatcher: cache.agent, headersTimeout: 300 })
    assert.equal(await waiter.body.text(), 'old page')
    assert.match(String(waiter.headers['cache-status']), /detail=stale-if-error-503$/)
    assert.equal((await first).body, 'old page')
    assert.equal(flaky.count('/flaky'), 2)
  } finally {
    await cache.close()
    await flaky.close()
  }
})
