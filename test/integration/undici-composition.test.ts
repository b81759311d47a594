import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, type Dispatcher, interceptors, RetryAgent, request } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { cacheInterceptor } from '../../lib/interceptor.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

let origin: Origin
const failOnce = new Set<string>()
/** Where /moved points; unset: /moved is a document of its own. */
let movedTo: string | undefined
let targetVersion = 1

before(async () => {
  origin = await startOrigin((req, res) => {
    const path = req.url ?? ''
    if (req.method === 'POST' && path === '/submit') return reply(res, 307, { location: '/target' })
    if (req.method === 'POST' && path === '/target') return reply(res, 200, {}, `target v${++targetVersion}`)
    if (path === '/target')
      return reply(res, 200, { 'cache-control': 'max-age=300' }, `target v${targetVersion}`)
    if (path === '/me') {
      const user = String(req.headers.authorization ?? '').replace('Bearer ', '')
      return reply(res, 302, { location: `/profile/${user}`, 'cache-control': 'no-store' })
    }
    if (path.startsWith('/profile/')) return reply(res, 200, { 'cache-control': 'public, max-age=300' }, path)
    if (path === '/moved' && movedTo) return reply(res, 302, { location: movedTo })
    if (path === '/head-a' && movedTo) return reply(res, 302, { location: '/head-b' })
    if (path === '/head-a') return reply(res, 200, { 'cache-control': 'max-age=1', 'x-page': 'a' }, 'AAAAA')
    if (path === '/head-b') return reply(res, 200, { 'cache-control': 'max-age=600', 'x-page': 'b' }, 'BBBBB')
    if (path === '/moved' || path === '/elsewhere') {
      const etag = '"same-tag"'
      if (req.headers['if-none-match'] === etag) return reply(res, 304, { etag, 'cache-control': 'no-cache' })
      return reply(res, 200, { etag, 'cache-control': 'no-cache' }, `document ${path}`)
    }
    if (path === '/dumped') {
      return reply(res, 200, { 'cache-control': 'max-age=60', 'content-length': '13' }, 'fresh /dumped')
    }
    if (path.startsWith('/flaky') && !failOnce.has(path)) {
      failOnce.add(path)
      return reply(res, 503, { 'retry-after': '0' }, 'busy')
    }
    reply(res, 200, { 'cache-control': 'max-age=60', etag: '"v1"' }, `fresh ${path}`)
  })
})
after(() => origin.close())

/** One dispatch whose handler throws from onResponseEnd; resolves with what its onResponseError got. */
function throwAtEnd(dispatcher: Dispatcher, path: string): Promise<string> {
  return new Promise((resolve) => {
    dispatcher.dispatch(
      { origin: origin.url, path, method: 'GET' },
      {
        onRequestStart() {},
        onResponseEnd() {
          throw new Error('thrown at the end')
        },
        onResponseError: (_controller, error) => resolve(error.message),
      },
    )
  })
}

test("a throw from a caller's onResponseEnd reaches its onResponseError, on a miss and on a hit, as in undici", {
  timeout: 10_000,
}, async () => {
  const agent = new CacheAgent({ store: new MemoryStore() })
  assert.equal(await throwAtEnd(agent, '/throw'), 'thrown at the end')
  assert.equal(await throwAtEnd(agent, '/throw'), 'thrown at the end')
  assert.equal(origin.count('/throw'), 1, 'the second was a hit')
  await agent.close()
})

test('RetryAgent over a CacheAgent retries a 503 and the retried response is cached', {
  timeout: 10_000,
}, async () => {
  const cache = new CacheAgent({ store: new MemoryStore() })
  const agent = new RetryAgent(cache, { maxRetries: 2, minTimeout: 10, maxTimeout: 20 })
  const first = await request(`${origin.url}/flaky`, { dispatcher: agent })
  assert.equal(first.statusCode, 200)
  assert.equal(await first.body.text(), 'fresh /flaky')
  assert.equal(origin.count('/flaky'), 2)
  const second = await request(`${origin.url}/flaky`, { dispatcher: agent })
  assert.equal(await second.body.text(), 'fresh /flaky')
  assert.match(String(second.headers['cache-status']), /^undici-cache; hit/)
  assert.equal(origin.count('/flaky'), 2)
  await agent.close()
})

/** A CacheAgent whose inner Agent follows redirects itself: the cache sees only the last hop. */
function redirectingCache(): CacheAgent {
  return new CacheAgent({
    store: new MemoryStore(),
    agent: new Agent().compose(interceptors.redirect({ maxRedirections: 3 })),
  })
}

test("a redirect followed inside the cache is not stored under the first URL: one user never gets another one's page", async () => {
  const agent = redirectingCache()
  const get = async (user: string) => {
    const res = await request(`${origin.url}/me`, {
      dispatcher: agent,
      headers: { authorization: `Bearer ${user}` },
    })
    return { body: await res.body.text(), status: res.headers['cache-status'] }
  }
  assert.deepEqual(await get('alice'), {
    body: '/profile/alice',
    status: 'undici-cache; fwd=miss; detail=redirected',
  })
  assert.deepEqual(await get('bob'), {
    body: '/profile/bob',
    status: 'undici-cache; fwd=miss; detail=redirected',
  })
  assert.equal(origin.count('/me'), 2)
  await agent.close()
})

test('a 304 from where a redirect led does not revalidate the stored response', async () => {
  const agent = redirectingCache()
  const first = await request(`${origin.url}/moved`, { dispatcher: agent })
  assert.equal(await first.body.text(), 'document /moved')
  assert.equal(first.headers['cache-status'], 'undici-cache; fwd=miss; stored')
  movedTo = '/elsewhere'
  try {
    const second = await request(`${origin.url}/moved`, { dispatcher: agent })
    assert.equal(await second.body.text(), 'document /elsewhere')
    assert.equal(
      origin.requests.filter((r) => r.url === '/elsewhere' && r.headers['if-none-match']).length,
      1,
    )
    assert.equal(origin.count('/elsewhere'), 2, 'the 304 was followed by an unconditional request')
  } finally {
    movedTo = undefined
    await agent.close()
  }
})

test('a HEAD answered from where a redirect led does not freshen the stored GET', async () => {
  const agent = redirectingCache()
  assert.equal(await (await request(`${origin.url}/head-a`, { dispatcher: agent })).body.text(), 'AAAAA')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  movedTo = '/head-b'
  try {
    const head = await request(`${origin.url}/head-a`, { dispatcher: agent, method: 'HEAD' })
    await head.body.dump()
    assert.equal(head.headers['x-page'], 'b')
    const get = await request(`${origin.url}/head-a`, { dispatcher: agent })
    assert.equal(await get.body.text(), 'BBBBB')
    assert.equal(get.headers['cache-status'], 'undici-cache; fwd=stale; detail=redirected')
  } finally {
    movedTo = undefined
    await agent.close()
  }
})

test('an unsafe request redirected inside the cache invalidates where it went (a 307 re-sends it there)', async () => {
  const agent = redirectingCache()
  assert.equal(await (await request(`${origin.url}/target`, { dispatcher: agent })).body.text(), 'target v1')
  const post = await request(`${origin.url}/submit`, { dispatcher: agent, method: 'POST', body: 'x' })
  assert.equal(await post.body.text(), 'target v2')
  const after = await request(`${origin.url}/target`, { dispatcher: agent })
  assert.equal(await after.body.text(), 'target v2')
  assert.equal(after.headers['cache-status'], 'undici-cache; fwd=miss; stored')
  await agent.close()
})

test('a body an interceptor inside the cache dropped (undici dump) is not stored short of its Content-Length (RFC 9111 §3.3)', async () => {
  const store = new MemoryStore()
  const dumping = new Agent().compose(interceptors.dump({ maxSize: 1024 }), cacheInterceptor({ store }))
  const normal = new Agent().compose(cacheInterceptor({ store }))
  try {
    const url = `${origin.url}/dumped`
    const dumped = await request(url, { dispatcher: dumping })
    assert.equal((await dumped.body.text()).length, 0)
    const full = await request(url, { dispatcher: normal })
    assert.equal(await full.body.text(), 'fresh /dumped')
    assert.equal(full.headers['cache-status'], 'undici-cache; fwd=miss; stored')
    assert.equal(origin.count('/dumped'), 2)
  } finally {
    await dumping.close()
    await normal.close()
  }
})

test("a CacheAgent tells undici's dispatcher events: 'drain' after dispatch() said false, 'connect'; closed and destroyed", async () => {
  const agent = new CacheAgent({ store: new MemoryStore(), agent: { connections: 1 } })
  const events: string[] = []
  for (const event of ['connect', 'drain']) agent.on(event as 'drain', () => events.push(event))
  const ended: Promise<void>[] = []
  const returned = [1, 2].map((index) => {
    let resolve = () => {}
    ended.push(new Promise<void>((done) => (resolve = done)))
    const handler = { onRequestStart() {}, onResponseEnd: () => resolve(), onResponseError: () => resolve() }
    return agent.dispatch({ origin: origin.url, path: `/busy-${index}`, method: 'GET' }, handler)
  })
  assert.deepEqual(returned, [false, false], 'one connection: the inner Agent is busy at once')
  const drained = await Promise.race([once(agent, 'drain').then(() => true), sleep(2000).then(() => false)])
  assert.equal(drained, true)
  await Promise.all(ended)
  assert.deepEqual([...new Set(events)], ['connect', 'drain'])
  assert.deepEqual([agent.closed, agent.destroyed], [false, false])
  const closing = agent.close()
  assert.deepEqual([agent.closed, agent.destroyed], [true, false])
  await closing
  assert.deepEqual([agent.closed, agent.destroyed], [true, true], "as undici's: destroyed once closed")
})

test('CacheAgents over one shared dispatcher listen to its events only while someone listens to theirs', async () => {
  const shared = new Agent()
  const agents = Array.from({ length: 12 }, () => new CacheAgent({ agent: shared, store: new MemoryStore() }))
  assert.equal(shared.listenerCount('drain'), 0)
  const listener = () => {}
  agents[0]?.on('drain', listener)
  agents[1]?.once('drain', listener)
  assert.equal(shared.listenerCount('drain'), 2)
  agents[0]?.off('drain', listener)
  assert.equal(shared.listenerCount('drain'), 1)
  ;(shared as unknown as NodeJS.EventEmitter).emit('drain', new URL(origin.url), [shared])
  assert.equal(shared.listenerCount('drain'), 0, 'the once listener went, and its relay with it')
  await shared.close()
})

test("after removeAllListeners(), a CacheAgent still tells the inner dispatcher's events to new listeners", async () => {
  const agent = new CacheAgent({ store: new MemoryStore() })
  agent.on('connect', () => {})
  agent.removeAllListeners()
  let connects = 0
  agent.on('connect', () => connects++)
  const res = await request(`${origin.url}/after-remove-all`, { dispatcher: agent })
  await res.body.text()
  assert.equal(connects, 1)
  await agent.close()
})

test("undici 7's per-request maxRedirections, taken by a redirect interceptor inside the cache, leaves the request cached", async () => {
  const agent = new CacheAgent({
    store: new MemoryStore(),
    agent: new Agent().compose(interceptors.redirect({ maxRedirections: 3 })),
  })
  const statuses: unknown[] = []
  for (let i = 0; i < 3; i++) {
    const options = { dispatcher: agent, maxRedirections: 2 } as Parameters<typeof request>[1]
    const response = await request(`${origin.url}/with-max-redirections`, options)
    await response.body.text()
    statuses.push(response.headers['cache-status'])
  }
  assert.equal(statuses[0], 'undici-cache; fwd=miss; stored')
  assert.match(String(statuses[2]), /^undici-cache; hit/)
  assert.equal(origin.count('/with-max-redirections'), 1)
  await agent.close()
})
