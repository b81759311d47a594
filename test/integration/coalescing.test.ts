import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { type Dispatcher, request } from 'undici'
import { Flight } from '../../lib/flights.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { EntryMeta, EntryWriter } from '../../lib/stores/store.js'
import { makeAgent, type Reply, send, sleep, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

const DELAY_MS = 150

/** A MemoryStore whose writes fail once an entry has taken `failAfterBytes` (a full disk, say). */
class FailingAfter extends MemoryStore {
  readonly #failAfterBytes: number

  constructor(failAfterBytes: number) {
    super()
    this.#failAfterBytes = failAfterBytes
  }

  override put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined {
    const writer = super.put(key, meta, expectedSizeBytes)
    if (!writer) return undefined
    let writtenBytes = 0
    return {
      write: (chunk) => {
        writtenBytes += chunk.length
        if (writtenBytes > this.#failAfterBytes)
          return Promise.reject(new Error('ENOSPC: no space left on device'))
        return writer.write(chunk)
      },
      commit: () => writer.commit(),
      abort: () => writer.abort(),
    }
  }
}

/**
 * A first caller for `url` that aborts ('gave up') 30 ms in, before a slow origin answers, while the
 * requests `waiters` makes wait on it; resolves once it is rejected, with their replies to come.
 */
async function firstCallerLeaves(agent: Dispatcher, url: string, waiters: () => Promise<Reply>[]) {
  const controller = new AbortController()
  const leader = request(url, { dispatcher: agent, signal: controller.signal })
  await sleep(10)
  const waiting = waiters()
  setTimeout(() => controller.abort(new Error('gave up')), 20)
  await assert.rejects(leader, { message: 'gave up' })
  return { replies: Promise.all(waiting) }
}

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
        if (path === '/no-cache') {
          headers['cache-control'] = 'no-cache'
          headers.etag = '"nc"'
          if (req.headers['if-none-match'] === '"nc"')
            return setTimeout(() => reply(res, 304, headers), DELAY_MS)
        }
        if (path === '/max-age-0') {
          headers['cache-control'] = 'max-age=0'
          headers.etag = '"m0"'
          headers['x-version'] = String(origin.count(path))
          if (req.headers['if-none-match'] === '"m0"')
            return setTimeout(() => reply(res, 304, headers), DELAY_MS)
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
      await send(cache.agent, `${origin.url}/no-cache`)
      const replies = await burst('/no-cache', 30)
      assert.equal(origin.count('/no-cache'), 2)
      assert.equal(origin.requests.at(-1)?.headers['if-none-match'], '"nc"')
      for (const r of replies) {
        assert.equal(r.body, '/no-cache in none')
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
      await send(cache.agent, `${origin.url}/max-age-0`)
      const replies = await burst('/max-age-0', 20)
      assert.equal(origin.count('/max-age-0'), 2)
      for (const r of replies) {
        assert.equal(r.body, '/max-age-0 in none')
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
      await send(cache.agent, `${origin.url}/no-cache`)
      const before = origin.count('/no-cache')
      const url = `${origin.url}/no-cache`
      const { replies } = await firstCallerLeaves(cache.agent, url, () => [
        send(cache.agent, url),
        send(cache.agent, url),
      ])
      for (const waiter of await replies) {
        assert.equal(waiter.body, '/no-cache in none')
        assert.equal(waiter.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304; collapsed')
      }
      assert.equal(origin.count('/no-cache'), before + 1)
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

test('when the first caller and a waiter that joined after the response started both abort, the download stops', async () => {
  let closedEarly = false
  const slow = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(64 * 1024 * 30) })
    let sent = 0
    const timer = setInterval(() => {
      res.write(Buffer.alloc(64 * 1024))
      if (++sent === 30) {
        clearInterval(timer)
        res.end()
      }
    }, 100)
    res.on('close', () => {
      clearInterval(timer)
      closedEarly = !res.writableFinished
    })
  })
  const cache = makeAgent(new MemoryStore())
  const leaderAbort = new AbortController()
  const waiterAbort = new AbortController()
  const leader = await request(`${slow.url}/slow`, { dispatcher: cache.agent, signal: leaderAbort.signal })
  const waiter = request(`${slow.url}/slow`, { dispatcher: cache.agent, signal: waiterAbort.signal })
  const reading = leader.body.resume()
  leaderAbort.abort()
  await assert.rejects(once(reading, 'end'))
  waiterAbort.abort()
  await assert.rejects(waiter)
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal(closedEarly, true, 'the origin connection was closed before the body was sent')
  assert.equal(slow.count('/slow'), 1)
  await cache.close()
  await slow.close()
})

test('a first caller that left early: a response not stored is not read for nobody; its waiters send their own', async () => {
  const closedEarly: boolean[] = []
  const slow = await startOrigin((_req, res) => {
    const index = closedEarly.push(false) - 1
    res.on('close', () => {
      closedEarly[index] = !res.writableFinished
    })
    setTimeout(() => {
      res.writeHead(200, { 'cache-control': 'private, max-age=60', 'content-length': '8' })
      res.write('priv')
      setTimeout(() => res.end('ate!'), 200)
    }, 100)
  })
  const cache = makeAgent(new MemoryStore())
  const url = `${slow.url}/p`
  const { replies } = await firstCallerLeaves(cache.agent, url, () => [
    send(cache.agent, url),
    send(cache.agent, url),
  ])
  for (const waiter of await replies) {
    assert.equal(waiter.body, 'private!')
    assert.equal(waiter.headers['cache-status'], 'undici-cache; fwd=miss; detail=private')
  }
  assert.equal(slow.count('/p'), 3)
  assert.deepEqual(closedEarly, [true, false, false], 'the first download stopped at its headers')
  await cache.close()
  await slow.close()
})

test('a revalidating first caller that left early: a 5xx within stale-if-error serves its waiters, not it', async () => {
  let failing = false
  const slow = await startOrigin((_req, res) => {
    if (!failing)
      return reply(res, 200, { 'cache-control': 'max-age=0, stale-if-error=60', etag: '"s"' }, 'stale')
    setTimeout(() => reply(res, 503, {}, 'down'), 100)
  })
  const cache = makeAgent(new MemoryStore())
  await send(cache.agent, `${slow.url}/s`)
  failing = true
  // the first caller's handler records every call it gets: after its abort, nothing more
  const calls: string[] = []
  let abortLeader: (reason: Error) => void = () => {}
  cache.agent.dispatch(
    { origin: slow.url, path: '/s', method: 'GET' },
    {
      onRequestStart: (controller) => {
        abortLeader = (reason) => controller.abort(reason)
      },
      onResponseStart: (_controller, statusCode) => void calls.push(`start ${statusCode}`),
      onResponseData: () => void calls.push('data'),
      onResponseEnd: () => void calls.push('end'),
      onResponseError: (_controller, error) => void calls.push(`error ${error.message}`),
    },
  )
  await sleep(10)
  const waiters = [send(cache.agent, `${slow.url}/s`), send(cache.agent, `${slow.url}/s`)]
  await sleep(10)
  abortLeader(new Error('gave up'))
  for (const waiter of await Promise.all(waiters)) {
    assert.equal(waiter.status, 200)
    assert.equal(waiter.body, 'stale')
    assert.equal(
      waiter.headers['cache-status'],
      'undici-cache; fwd=stale; fwd-status=503; collapsed; detail=stale-if-error-503',
    )
  }
  await sleep(20)
  assert.deepEqual(calls, ['error gave up'])
  assert.equal(slow.count('/s'), 2, 'one conditional request, shared')
  await cache.close()
  await slow.close()
})

test('a revalidating first caller that left early: a 304 for another representation is asked for again once, for its waiters', async () => {
  let version = 'one'
  const slow = await startOrigin((req, res) => {
    const headers = { 'cache-control': 'no-cache', etag: `"${version}"` }
    if (version === 'one') return reply(res, 200, headers, version)
    // a 304 naming another ETag than the one asked about: the stored response is not the one it validates
    if (req.headers['if-none-match']) return setTimeout(() => reply(res, 304, { etag: '"other"' }), 100)
    setTimeout(() => reply(res, 200, headers, version), 100)
  })
  const cache = makeAgent(new MemoryStore())
  await send(cache.agent, `${slow.url}/m`)
  version = 'two'
  const url = `${slow.url}/m`
  const { replies } = await firstCallerLeaves(cache.agent, url, () => [
    send(cache.agent, url),
    send(cache.agent, url),
  ])
  for (const waiter of await replies) {
    assert.equal(waiter.body, 'two')
    assert.equal(waiter.headers['cache-status'], 'undici-cache; fwd=stale; collapsed')
  }
  assert.equal(slow.count('/m'), 3)
  await cache.close()
  await slow.close()
})

/** A raw handler that records each call; `onStart` runs in its onResponseStart, `onError` in its onResponseError. */
function recorder(
  hooks: { onStart?: (controller: Dispatcher.DispatchController) => void; onError?: () => void } = {},
) {
  const calls: string[] = []
  let controller: Dispatcher.DispatchController | undefined
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart: (started) => {
      controller = started
    },
    onResponseStart: (started, statusCode) => {
      calls.push(`start ${statusCode}`)
      hooks.onStart?.(started)
    },
    onResponseData: () => void calls.push('data'),
    onResponseEnd: () => void calls.push('end'),
    onResponseError: (_controller, error) => {
      calls.push(`error ${error.message}`)
      hooks.onError?.()
    },
  }
  return { handler, calls, controller: () => controller as Dispatcher.DispatchController }
}

test('a first caller that left early: when its one waiter fed live leaves as the response starts, the download stops', async () => {
  let closedEarly = false
  const endless = await startOrigin((_req, res) =>
    setTimeout(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60' })
      const timer = setInterval(() => res.write('x'.repeat(1024)), 20)
      res.on('close', () => {
        clearInterval(timer)
        closedEarly = !res.writableFinished
      })
    }, 100),
  )
  const cache = makeAgent(new MemoryStore())
  const leader = recorder()
  cache.agent.dispatch({ origin: endless.url, path: '/e', method: 'GET' }, leader.handler)
  await sleep(10)
  const waiter = recorder({ onStart: (controller) => controller.abort(new Error('waiter gave up')) })
  cache.agent.dispatch({ origin: endless.url, path: '/e', method: 'GET' }, waiter.handler)
  await sleep(10)
  leader.controller().abort(new Error('gave up'))
  await sleep(300)
  assert.deepEqual(leader.calls, ['error gave up'])
  assert.deepEqual(waiter.calls, ['start 200', 'error waiter gave up'])
  assert.equal(closedEarly, true, 'nobody reads the download: it stopped')
  const closingMs = performance.now()
  await cache.close()
  assert.ok(performance.now() - closingMs < 500, 'close() waits for no download')
  await endless.close()
})

test('a revalidating first caller that paused, then left: its waiters are served what the 304 validated', async () => {
  let requests = 0
  const slow = await startOrigin((_req, res) => {
    if (requests++ === 0) return reply(res, 200, { 'cache-control': 'no-cache', etag: '"p"' }, 'body')
    setTimeout(() => reply(res, 304, { etag: '"p"' }), 100)
  })
  const cache = makeAgent(new MemoryStore())
  await send(cache.agent, `${slow.url}/p`)
  const leader = recorder()
  cache.agent.dispatch({ origin: slow.url, path: '/p', method: 'GET' }, leader.handler)
  await sleep(10)
  const waiter = send(cache.agent, `${slow.url}/p`)
  await sleep(10)
  leader.controller().pause()
  leader.controller().abort(new Error('gave up'))
  leader.controller().resume()
  leader.controller().pause()
  const served = await waiter
  assert.equal(served.body, 'body')
  assert.equal(served.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304; collapsed')
  assert.deepEqual(leader.calls, ['error gave up'])
  assert.equal(requests, 2)
  await cache.close()
  await slow.close()
})

test('a first caller that leaves early and whose onResponseError throws gets the throw from its abort(), as from undici', async () => {
  const slow = await startOrigin((_req, res) =>
    setTimeout(() => reply(res, 200, { 'cache-control': 'max-age=60' }, 'late'), 100),
  )
  const cache = makeAgent(new MemoryStore())
  const leader = recorder({
    onError: () => {
      throw new Error('handler threw')
    },
  })
  cache.agent.dispatch({ origin: slow.url, path: '/t', method: 'GET' }, leader.handler)
  await sleep(10)
  const waiter = send(cache.agent, `${slow.url}/t`)
  await sleep(10)
  assert.throws(() => leader.controller().abort(new Error('gave up')), { message: 'handler threw' })
  assert.equal((await waiter).body, 'late')
  assert.equal(slow.count('/t'), 1)
  await cache.close()
  await slow.close()
})

test('when the first caller leaves before the response starts and its one waiter leaves too, the request stops', async () => {
  let closedEarly = false
  const slow = await startOrigin((_req, res) => {
    const timer = setTimeout(() => reply(res, 200, { 'cache-control': 'max-age=60' }, 'late'), 400)
    res.on('close', () => {
      clearTimeout(timer)
      closedEarly = !res.writableFinished
    })
  })
  const cache = makeAgent(new MemoryStore())
  const leaderAbort = new AbortController()
  const waiterAbort = new AbortController()
  const leader = request(`${slow.url}/gone`, { dispatcher: cache.agent, signal: leaderAbort.signal })
  await sleep(10)
  const waiter = request(`${slow.url}/gone`, { dispatcher: cache.agent, signal: waiterAbort.signal })
  await sleep(10)
  leaderAbort.abort()
  await assert.rejects(leader)
  await sleep(50)
  assert.equal(closedEarly, false, 'the waiter still needs it')
  waiterAbort.abort()
  await assert.rejects(waiter)
  await sleep(100)
  assert.equal(closedEarly, true, 'the origin request was stopped before its answer')
  assert.equal(slow.count('/gone'), 1)
  await cache.close()
  await slow.close()
})

test('a download whose first caller left early stops when its store write fails and no waiter reads it live', async () => {
  let closedEarly = false
  const big = await startOrigin((req, res) => {
    if (req.headers.range)
      return reply(res, 206, { etag: '"a"', 'content-range': 'bytes 0-9/3932160' }, '0123456789')
    res.on('close', () => {
      closedEarly = !res.writableFinished
    })
    setTimeout(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60', etag: '"a"', 'content-length': String(3932160) })
      const step = (left: number) => {
        if (res.destroyed) return
        if (left === 0) return void res.end()
        res.write(Buffer.alloc(65536, 'x'))
        setTimeout(() => step(left - 1), 20)
      }
      step(60)
    }, 50)
  })
  const failing = new FailingAfter(128 * 1024)
  const cache = makeAgent(failing)
  const { replies } = await firstCallerLeaves(cache.agent, `${big.url}/big`, () => [
    send(cache.agent, `${big.url}/big`, { headers: { range: 'bytes=0-9' } }),
  ])
  assert.equal((await replies)[0]?.body, '0123456789')
  const closingMs = performance.now()
  await cache.close()
  assert.ok(performance.now() - closingMs < 500, 'close() does not wait for a download nobody reads')
  assert.equal(closedEarly, true, 'the first download was stopped')
  await big.close()
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
