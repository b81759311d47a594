/**
 * Parts of undici's dispatcher and handler contract beyond the response itself, most of them found on
 * undici 8: interim responses, the origin undici 8's compose() gives an interceptor, old-API handlers
 * reaching a composed interceptor, the send-progress calls, and an Agent's WebSocket limits.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Agent, type Dispatcher, Pool, request } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { cacheInterceptor } from '../../lib/interceptor.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { makeAgent, send } from '../helpers/client.js'
import { type Origin, reply, startOrigin, twoMinutesAgo } from '../helpers/origin.js'

let origin: Origin
let other: Origin

before(async () => {
  origin = await startOrigin((req, res) => {
    const path = req.url ?? '/'
    const headers: Record<string, string> = { 'cache-control': 'max-age=60', etag: '"h"' }
    if (path.startsWith('/hang')) {
      // the headers and a first piece, then nothing: a download under way
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '100000' })
      return void res.write('first piece')
    }
    if (path.startsWith('/hints')) {
      // RFC 8297: 103 Early Hints before the final response
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' })
      if (req.headers['if-none-match'] === '"h"') return setTimeout(() => reply(res, 304, headers), 50)
      // stale on arrival, revalidated for several requests at once (see twoMinutesAgo)
      if (path.startsWith('/hints-stale')) headers.date = twoMinutesAgo()
      return setTimeout(() => reply(res, 200, headers, `hinted ${path}`), 50)
    }
    reply(res, 200, headers, `from origin for ${req.method} ${path}`)
  })
  other = await startOrigin((req, res) =>
    reply(res, 200, { 'cache-control': 'max-age=60' }, `other ${req.url}`),
  )
})
after(async () => {
  await origin.close()
  await other.close()
})

describe('interim responses (RFC 9110 §15.2)', () => {
  test('a 103 goes to each caller as it came; the final response is the one cached, and requests still coalesce', async () => {
    const cache = makeAgent(new MemoryStore())
    const infos: { statusCode: number; headers: Record<string, unknown> }[] = []
    const onInfo = (info: { statusCode: number; headers: Record<string, unknown> }) => void infos.push(info)
    const url = `${origin.url}/hints`
    const replies = await Promise.all(
      [0, 1, 2].map(async () => {
        const res = await request(url, { dispatcher: cache.agent, onInfo })
        return {
          status: res.statusCode,
          cacheStatus: res.headers['cache-status'],
          body: await res.body.text(),
        }
      }),
    )
    assert.equal(origin.count('/hints'), 1)
    for (const one of replies) assert.deepEqual([one.status, one.body], [200, 'hinted /hints'])
    assert.equal(replies[0]?.cacheStatus, 'undici-cache; fwd=miss; stored; collapsed')
    // the first caller's request met the 103; the others waited on it
    assert.equal(infos.length, 1)
    assert.equal(infos[0]?.statusCode, 103)
    assert.equal(infos[0]?.headers.link, '</style.css>; rel=preload; as=style')
    assert.equal(infos[0]?.headers['cache-status'], undefined)
    const hit = await send(cache.agent, url)
    assert.match(String(hit.headers['cache-status']), /^undici-cache; hit/)
    await cache.close()
  })

  test('a 103 before a 304: the revalidation serves the stored response', async () => {
    const cache = makeAgent(new MemoryStore())
    const url = `${origin.url}/hints-stale`
    await send(cache.agent, url)
    const [first, second] = await Promise.all([send(cache.agent, url), send(cache.agent, url)])
    // one conditional request, shared: both are served the stored body
    for (const one of [first, second]) {
      assert.equal(one?.body, 'hinted /hints-stale')
      assert.match(
        String(one?.headers['cache-status']),
        /^undici-cache; fwd=stale; fwd-status=304; collapsed$/,
      )
    }
    assert.equal(origin.count('/hints-stale'), 2)
    await cache.close()
  })
})

describe("the dispatcher's origin, as undici 8's compose() gives it", () => {
  /** The interceptor as undici 8's compose() calls it: with the pool's origin. */
  function composedOn(pool: Pool, dispatcherOrigin: string | null) {
    // undici 7's types know only the one-argument form
    const interceptor = cacheInterceptor({ store: new MemoryStore() }) as (
      dispatch: Dispatcher.Dispatch,
      origin: string | null,
    ) => Dispatcher.Dispatch
    const dispatch = interceptor(pool.dispatch.bind(pool), dispatcherOrigin)
    return {
      dispatch: (opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) =>
        dispatch(opts, handler),
    }
  }

  test("a Pool's answer to a request for another origin is not cached under that origin", async () => {
    const pool = new Pool(origin.url)
    const dispatcher = composedOn(pool, new URL(origin.url).origin) as unknown as Dispatcher
    const elsewhere = await send(dispatcher, `${other.url}/x`)
    // the pool sends it to its own origin, whatever the request names
    assert.equal(elsewhere.body, 'from origin for GET /x')
    assert.equal(elsewhere.headers['cache-status'], 'undici-cache; fwd=bypass')
    assert.equal(
      elsewhere.headers['cache-status'],
      (await send(dispatcher, `${other.url}/x`)).headers['cache-status'],
    )
    const own = await send(dispatcher, `${origin.url}/x`)
    assert.equal(own.headers['cache-status'], 'undici-cache; fwd=miss; stored')
    assert.match(
      String((await send(dispatcher, `${origin.url}/x`)).headers['cache-status']),
      /^undici-cache; hit/,
    )
    assert.equal(origin.count('/x'), 3)
    await pool.close()
  })

  test("an unsafe request naming another origin invalidates what it reached: the Pool's (RFC 9111 §4.4)", async () => {
    const pool = new Pool(origin.url)
    const dispatcher = composedOn(pool, new URL(origin.url).origin) as unknown as Dispatcher
    const url = `${origin.url}/written`
    assert.equal((await send(dispatcher, url)).headers['cache-status'], 'undici-cache; fwd=miss; stored')
    assert.match(String((await send(dispatcher, url)).headers['cache-status']), /^undici-cache; hit/)
    await send(dispatcher, `${other.url}/written`, { method: 'POST' })
    assert.equal((await send(dispatcher, url)).headers['cache-status'], 'undici-cache; fwd=miss; stored')
    assert.equal(origin.count('/written'), 3)
    await pool.close()
  })

  test('a dispatcher with no single origin (null: a BalancedPool) caches nothing', async () => {
    const pool = new Pool(origin.url)
    const dispatcher = composedOn(pool, null) as unknown as Dispatcher
    for (let i = 0; i < 2; i++) {
      const answer = await send(dispatcher, `${origin.url}/balanced`)
      assert.equal(answer.headers['cache-status'], 'undici-cache; fwd=bypass')
    }
    assert.equal(origin.count('/balanced'), 2)
    await pool.close()
  })
})

test('an old-API handler reaching a composed interceptor is adapted (undici 8 hands it on unwrapped)', async () => {
  const agent = new Agent()
  const dispatch = cacheInterceptor({ store: new MemoryStore() })(agent.dispatch.bind(agent))
  const bodies: string[] = []
  for (let i = 0; i < 2; i++) {
    const { status, body, cacheStatus } = await new Promise<{
      status: number
      body: string
      cacheStatus: string
    }>((resolve, reject) => {
      const chunks: Buffer[] = []
      let status = 0
      let cacheStatus = ''
      const handler = {
        onConnect() {},
        onHeaders(statusCode: number, raw: Buffer[]) {
          status = statusCode
          for (let index = 0; index < raw.length; index += 2)
            if (String(raw[index]) === 'cache-status') cacheStatus = String(raw[index + 1])
          return true
        },
        onData(chunk: Buffer) {
          chunks.push(chunk)
          return true
        },
        onComplete: () => resolve({ status, body: Buffer.concat(chunks).toString(), cacheStatus }),
        onError: reject,
      }
      dispatch(
        { origin: origin.url, path: '/legacy', method: 'GET' },
        handler as unknown as Dispatcher.DispatchHandler,
      )
    })
    assert.equal(status, 200)
    bodies.push(`${body} | ${cacheStatus}`)
  }
  assert.equal(bodies[0], 'from origin for GET /legacy | undici-cache; fwd=miss; stored')
  assert.match(String(bodies[1]), /^from origin for GET \/legacy \| undici-cache; hit; ttl=(58|59|60)$/)
  await agent.close()
})

test('onBodySent and onRequestSent reach the caller, as with a plain Agent', async () => {
  const cache = makeAgent(new MemoryStore())
  const plain = new Agent()
  const progress = (dispatcher: Dispatcher, method: 'GET' | 'POST', path: string) =>
    new Promise<string[]>((resolve, reject) => {
      const calls: string[] = []
      const handler = {
        onRequestStart() {},
        onBodySent: () => void calls.push('body'),
        onRequestSent: () => void calls.push('sent'),
        onResponseStart() {},
        onResponseData() {},
        onResponseEnd: () => resolve(calls),
        onResponseError: (_controller: unknown, error: Error) => reject(error),
      }
      const body = method === 'POST' ? 'payload' : undefined
      dispatcher.dispatch({ origin: origin.url, path, method, body }, handler as Dispatcher.DispatchHandler)
    })
  for (const [method, path] of [
    ['POST', '/posted'],
    ['GET', '/progress'],
  ] as const) {
    // undici 7 calls them on old-API handlers only, so a new-API one gets none there, through either
    const expected = await progress(plain, method, path)
    assert.deepEqual(await progress(cache.agent, method, path), expected, method)
  }
  await Promise.all([cache.close(), plain.close()])
})

test("a CacheAgent gives its Agent's WebSocket and EventSource limits (undici 8 reads them there)", async () => {
  const limits = { webSocket: { maxPayloadSize: 10 }, eventSource: { maxEventSize: 10 } }
  const plain = new Agent(limits as Agent.Options)
  const cached = new CacheAgent({ store: new MemoryStore(), agent: limits as Agent.Options })
  const read = (dispatcher: object, name: string) => (dispatcher as Record<string, unknown>)[name]
  for (const name of ['webSocketOptions', 'eventSourceOptions'])
    assert.deepEqual(read(cached, name), read(plain, name), name)
  await Promise.all([plain.close(), cached.close()])
})

test("an abort without a reason ends a bypassed or unsafe request with undici's own error, as with a plain Agent", async () => {
  const cache = makeAgent(new MemoryStore())
  const plain = new Agent()
  const abortedAtStart = (dispatcher: Dispatcher, opts: Partial<Dispatcher.DispatchOptions>) =>
    new Promise<{ code: unknown; reason: unknown }>((resolve) => {
      let seen: Dispatcher.DispatchController | undefined
      const handler = {
        onRequestStart(controller: Dispatcher.DispatchController) {
          seen = controller
          ;(controller.abort as (reason?: Error) => void)()
        },
        onResponseStart() {},
        onResponseData() {},
        onResponseEnd: () => resolve({ code: 'ended', reason: seen?.reason ?? null }),
        onResponseError: (_controller: unknown, error: Error) =>
          resolve({ code: (error as { code?: unknown }).code, reason: seen?.reason ?? null }),
      }
      dispatcher.dispatch(
        { origin: origin.url, path: '/aborted', method: 'GET', ...opts } as Dispatcher.DispatchOptions,
        handler as Dispatcher.DispatchHandler,
      )
    })
  for (const opts of [{ method: 'POST' as const }, { cache: { bypass: true } }]) {
    const expected = await abortedAtStart(plain, opts)
    assert.equal(expected.code, 'UND_ERR_ABORTED')
    assert.deepEqual(await abortedAtStart(cache.agent, opts), expected, JSON.stringify(opts))
  }
  await Promise.all([cache.close(), plain.close()])
})

test("a throw from onResponseError after the caller aborted a hit stays the caller's own (no uncaught exception), as in undici", async () => {
  const cache = makeAgent(new MemoryStore())
  await send(cache.agent, `${origin.url}/abort-then-throw`)
  for (const abortIn of ['start', 'data'] as const) {
    const failed = await new Promise<string>((resolve) => {
      cache.agent.dispatch(
        { origin: origin.url, path: '/abort-then-throw', method: 'GET' },
        {
          onRequestStart() {},
          onResponseStart(controller) {
            if (abortIn === 'start') controller.abort(new Error('caller abort'))
          },
          onResponseData(controller) {
            if (abortIn === 'data') controller.abort(new Error('caller abort'))
          },
          onResponseError(_controller, error) {
            resolve(error.message)
            throw new Error('thrown from onResponseError')
          },
        },
      )
    })
    assert.equal(failed, 'caller abort', abortIn)
    // an uncaught exception from a microtask of the cache would fail this test
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  assert.equal(origin.count('/abort-then-throw'), 1)
  await cache.close()
})

test("destroy() ends every request under way though one caller's onResponseError throws, and resolves", async () => {
  const agent = new CacheAgent({ store: new MemoryStore() })
  const started: Promise<void>[] = []
  const failed = ['/hang-a', '/hang-b'].map((path) => {
    let onStart = () => {}
    started.push(new Promise<void>((resolve) => (onStart = resolve)))
    return new Promise<string>((resolve) => {
      agent.dispatch(
        { origin: origin.url, path, method: 'GET' },
        {
          onRequestStart() {},
          onResponseStart: () => onStart(),
          onResponseError(_controller, error) {
            resolve(error.name)
            if (path === '/hang-a') throw new Error('thrown by the first caller')
          },
        },
      )
    })
  })
  await Promise.all(started)
  const destroyed = await Promise.race([
    agent.destroy().then(() => 'resolved'),
    new Promise((resolve) => setTimeout(() => resolve('still pending after 2 s'), 2000)),
  ])
  assert.equal(destroyed, 'resolved')
  assert.deepEqual(await Promise.all(failed), ['ClientDestroyedError', 'ClientDestroyedError'])
})
