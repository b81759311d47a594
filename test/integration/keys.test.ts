import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Agent, type Dispatcher, interceptors } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

let origin: Origin
let agent: CacheAgent

before(async () => {
  // routes on the raw request target and the Host field, as virtual hosts and many routers do
  origin = await startOrigin((req, res) => {
    const made = req.method === 'POST' && req.url === '/make'
    const location: Record<string, string> = made ? { location: `http://${req.headers.host}/made` } : {}
    reply(res, 200, { 'cache-control': 'max-age=300', ...location }, `${req.headers.host} ${req.url}`)
  })
  agent = new CacheAgent({ store: new MemoryStore() })
})
after(async () => {
  await agent.close()
  await origin.close()
})

async function get(
  path: string,
  headers: Record<string, string> = {},
  method: Dispatcher.HttpMethod = 'GET',
) {
  const res = await agent.request({ origin: origin.url, path, method, headers })
  return { body: await res.body.text(), status: res.headers['cache-status'] }
}

test('requests to one address for two hosts (Host field) are two entries, and a write invalidates its own host only', async () => {
  const port = new URL(origin.url).port
  assert.equal((await get('/page', { host: 'a.test' })).body, 'a.test /page')
  assert.equal((await get('/page', { host: 'b.test' })).body, 'b.test /page')
  assert.equal(origin.count('/page'), 2)
  const hit = await get('/page', { host: 'b.test' })
  assert.deepEqual(hit.body, 'b.test /page')
  assert.match(String(hit.status), /^undici-cache; hit/)
  assert.equal((await get('/page', { host: `127.0.0.1:${port}` })).body, `127.0.0.1:${port} /page`)
  assert.match(
    String((await get('/page')).status),
    /^undici-cache; hit/,
    'the address itself as Host is one key',
  )
  await get('/page', { host: 'a.test' }, 'POST')
  assert.equal((await get('/page', { host: 'a.test' })).status, 'undici-cache; fwd=miss; stored')
  assert.match(String((await get('/page', { host: 'b.test' })).status), /^undici-cache; hit/)
  assert.equal(origin.count('/page'), 5)
})

test('a path the origin sees as another target than its normalised form is not cached', async () => {
  for (const [sent, other] of [
    ['/static/..\\api', '/api'],
    ['/a/../b', '/b'],
    ['/x#frag', '/x'],
  ]) {
    const first = await get(sent as string)
    assert.equal(first.body, `127.0.0.1:${new URL(origin.url).port} ${sent}`)
    assert.equal(first.status, 'undici-cache; fwd=bypass')
    assert.equal(
      (await get(other as string)).status,
      'undici-cache; fwd=miss; stored',
      `${other} after ${sent}`,
    )
  }
})

test('a path with an empty query (/p?, as undici 7 fetch() sends for a URL built with an empty URLSearchParams) is cached as its own target', async () => {
  for (const path of ['/q?', '/q', '/q?']) await get(path)
  assert.match(String((await get('/q')).status), /^undici-cache; hit/)
  const hit = await get('/q?')
  assert.match(String(hit.status), /^undici-cache; hit/)
  assert.equal(hit.body, `127.0.0.1:${new URL(origin.url).port} /q?`)
  assert.deepEqual([origin.count('/q?'), origin.count('/q')], [1, 1])
})

test('an unsafe request to a path URL parsing changes invalidates the parsed target', async () => {
  for (const [sent, target] of [
    ['/k/./v', '/k/v'],
    ['/k/x/../w', '/k/w'],
  ]) {
    await get(target as string)
    assert.match(String((await get(target as string)).status), /^undici-cache; hit/)
    await get(sent as string, {}, 'PUT')
    assert.equal(
      (await get(target as string)).status,
      'undici-cache; fwd=miss; stored',
      `${target} after ${sent}`,
    )
  }
})

test("a write whose absolute Location names the Host field's authority invalidates that URL", async () => {
  for (const host of ['a.test', 'b.test']) await get('/made', { host })
  assert.match(String((await get('/made', { host: 'a.test' })).status), /^undici-cache; hit/)
  await get('/make', { host: 'a.test' }, 'POST')
  const after = await get('/made', { host: 'a.test' })
  assert.deepEqual(after, { body: 'a.test /made', status: 'undici-cache; fwd=miss; stored' })
  assert.match(String((await get('/made', { host: 'b.test' })).status), /^undici-cache; hit/)
  assert.equal(origin.count('/made'), 3)
})

test('that write also invalidates the URL as sent to the name itself (resolved inside the cache)', async () => {
  const store = new MemoryStore()
  const lookup = (_origin: URL, _options: unknown, done: (error: null, records: unknown[]) => void) =>
    done(null, [{ address: '127.0.0.1', family: 4, ttl: 60_000 }])
  const resolving = new Agent().compose(interceptors.dns({ lookup } as never))
  const byName = new CacheAgent({ store, agent: resolving })
  const byAddress = new CacheAgent({ store })
  const host = `a.test:${new URL(origin.url).port}`
  const named = async (method: Dispatcher.HttpMethod = 'GET') => {
    const res = await byName.request({ origin: `http://${host}`, path: '/made', method })
    return { body: await res.body.text(), status: res.headers['cache-status'] }
  }
  try {
    assert.equal((await named()).status, 'undici-cache; fwd=miss; stored')
    assert.match(String((await named()).status), /^undici-cache; hit/)
    const before = origin.count('/made')
    const post = await byAddress.request({
      origin: origin.url,
      path: '/make',
      method: 'POST',
      headers: { host },
    })
    assert.equal(post.headers.location, `http://${host}/made`)
    await post.body.dump()
    assert.deepEqual(await named(), { body: `${host} /made`, status: 'undici-cache; fwd=miss; stored' })
    assert.equal(origin.count('/made'), before + 1)
  } finally {
    await byName.close()
    await byAddress.close()
  }
})

test('headers given as a one-shot iterable (a generator) reach the origin, for a GET and a POST', async () => {
  for (const method of ['GET', 'POST'] as const) {
    const headers = (function* () {
      yield ['host', 'gen.test'] as [string, string]
    })()
    const res = await agent.request({ origin: origin.url, path: `/gen-${method}`, method, headers })
    assert.equal(await res.body.text(), `gen.test /gen-${method}`)
  }
  assert.equal(origin.count('/gen-GET') + origin.count('/gen-POST'), 2)
})

test('a path that is no string fails as undici fails it, through the handler, not with a throw from dispatch()', async () => {
  for (const dispatcher of [new Agent(), agent]) {
    const failed = await new Promise<string>((resolve, reject) => {
      const handler = {
        onRequestStart() {},
        onResponseEnd: () => reject(new Error('answered')),
        onResponseError: (_controller: unknown, error: Error) => resolve(`${error.name}: ${error.message}`),
      }
      try {
        dispatcher.dispatch({ origin: origin.url, path: 42 as unknown as string, method: 'GET' }, handler)
      } catch (error) {
        reject(error)
      }
    })
    assert.equal(failed, 'InvalidArgumentError: path must be a string')
  }
})
