import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pipeline as pipelineAsync } from 'node:stream/promises'
import { after, before, test } from 'node:test'
import {
  Agent,
  type Dispatcher,
  getGlobalDispatcher,
  interceptors,
  pipeline,
  request,
  setGlobalDispatcher,
  stream,
  fetch as undiciFetch,
  upgrade,
} from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { CacheStore } from '../../lib/stores/store.js'
import { tempDir } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

let origin: Origin
let agent: CacheAgent

/** undici 8's own Agent refuses old-API handlers; a CacheAgent still adapts them. */
const plainAgentTakesOldApi =
  Number(createRequire(import.meta.url)('undici/package.json').version.split('.')[0]) < 8
if (!plainAgentTakesOldApi)
  console.log("# undici 8: old-API handlers are compared with a plain Agent's only on undici 7")
const previous = getGlobalDispatcher()

before(async () => {
  origin = await startOrigin((req, res) => {
    if (req.url === '/lines') {
      const lines = {
        'set-cookie': ['a=1; Path=/', 'b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT'],
        link: ['<a>', '<b>'],
      }
      return reply(res, 200, { 'cache-control': 'max-age=60', ...lines }, 'lines')
    }
    // node:http writes a header string as latin1: one byte 0xE9 for é
    if (req.url === '/latin1')
      return reply(res, 200, { 'cache-control': 'max-age=60', 'x-word': 'café' }, 'w')
    reply(res, 200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' }, `hello ${req.url}`)
  })
  agent = new CacheAgent({ store: new MemoryStore() })
  setGlobalDispatcher(agent)
})
after(async () => {
  setGlobalDispatcher(previous)
  await agent.close()
  await origin.close()
})

test("Node's built-in global fetch() is cached through setGlobalDispatcher(new CacheAgent())", async () => {
  const first = await globalThis.fetch(`${origin.url}/global`)
  assert.equal(await first.text(), 'hello /global')
  assert.equal(first.headers.get('cache-status'), 'undici-cache; fwd=miss; stored')
  const second = await globalThis.fetch(`${origin.url}/global`)
  assert.equal(await second.text(), 'hello /global')
  assert.match(String(second.headers.get('cache-status')), /^undici-cache; hit; ttl=(58|59|60)$/)
  // Date has one-second resolution, so a response a few ms old may already count 1 s of age.
  assert.match(String(second.headers.get('age')), /^[01]$/)
  assert.equal(origin.count('/global'), 1)
})

test('global fetch() gets each Set-Cookie line on its own, on a miss and on a hit (shared: false)', async () => {
  const personal = new CacheAgent({ store: new MemoryStore(), shared: false })
  for (const status of ['undici-cache; fwd=miss; stored', 'undici-cache; hit; ttl=60']) {
    const response = await globalThis.fetch(`${origin.url}/lines`, { dispatcher: personal } as RequestInit)
    assert.equal(await response.text(), 'lines')
    assert.match(
      String(response.headers.get('cache-status')),
      new RegExp(`^${status.replace('60', '\\d+')}$`),
    )
    assert.deepEqual(response.headers.getSetCookie(), [
      'a=1; Path=/',
      'b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT',
    ])
    assert.equal(response.headers.get('link'), '<a>, <b>')
  }
  await personal.close()
})

/** The raw header lines an old-API handler is given for one GET of `path`, as [name, value] strings. */
function oldApiLines(dispatcher: Dispatcher, path: string): Promise<[string, string][]> {
  return new Promise((resolve, reject) => {
    let lines: [string, string][] = []
    const handler = {
      onConnect() {},
      onHeaders(_status: number, raw: Buffer[]) {
        assert.ok(raw.every((line) => Buffer.isBuffer(line)))
        lines = []
        for (let index = 0; index < raw.length; index += 2) {
          lines.push([String(raw[index]?.toString('latin1')), String(raw[index + 1]?.toString('hex'))])
        }
        return true
      },
      onData: () => true,
      onComplete: () => resolve(lines),
      onError: reject,
    } as unknown as Dispatcher.DispatchHandler
    dispatcher.dispatch({ origin: origin.url, path, method: 'GET' }, handler)
  })
}

test('an old-API handler gets each field line as its own name and value Buffers, byte for byte, on a miss and a hit', async () => {
  const hex = (text: string) => Buffer.from(text, 'latin1').toString('hex')
  const plain = new Agent()
  const cached = new CacheAgent({ store: new MemoryStore(), shared: false })
  if (plainAgentTakesOldApi) {
    const fromPlain = await oldApiLines(plain, '/latin1')
    assert.deepEqual(
      fromPlain.find(([name]) => name.toLowerCase() === 'x-word'),
      ['x-word', hex('café')],
    )
  }
  for (const path of ['/latin1', '/lines']) {
    for (const status of [/^undici-cache; fwd=miss; stored$/, /^undici-cache; hit; ttl=(58|59|60)$/]) {
      const lines = await oldApiLines(cached, path)
      const named = (wanted: string) => lines.filter(([name]) => name === wanted).map(([, value]) => value)
      const [cacheStatus, ...more] = named('cache-status')
      assert.match(Buffer.from(String(cacheStatus), 'hex').toString('latin1'), status)
      assert.equal(more.length, 0)
      if (path === '/latin1') assert.deepEqual(named('x-word'), [hex('café')])
      else {
        assert.deepEqual(named('set-cookie'), [
          hex('a=1; Path=/'),
          hex('b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT'),
        ])
        assert.deepEqual(named('link'), [hex('<a>'), hex('<b>')])
      }
    }
  }
  await Promise.all([plain.close(), cached.close()])
})

test('old-API handlers are checked as a plain Agent checks them, and fetch() gets its response timing', async () => {
  const plain = new Agent()
  const opts = { origin: origin.url, path: '/checked', method: 'GET' as const }
  for (const dispatcher of plainAgentTakesOldApi ? [plain, agent] : [agent]) {
    const noOnError = { onConnect() {}, onHeaders() {} } as unknown as Dispatcher.DispatchHandler
    assert.throws(() => dispatcher.dispatch(opts, noOnError), {
      name: 'InvalidArgumentError',
      message: 'invalid onError method',
    })
  }
  await plain.close()
  for (const fetchOf of [globalThis.fetch, undiciFetch] as ((
    url: string,
    init: object,
  ) => Promise<Response>)[]) {
    const url = `${origin.url}/timed-${fetchOf === undiciFetch ? 'undici' : 'global'}`
    await (await fetchOf(url, { dispatcher: agent })).text()
    await new Promise((resolve) => setTimeout(resolve, 20))
    const entry = performance.getEntriesByName(url).at(-1) as PerformanceResourceTiming | undefined
    assert.ok(entry && entry.responseStart > 0, `responseStart of ${url}: ${entry?.responseStart}`)
  }
})

test('after destroy() or close(), new requests fail as with a plain Agent: ClientClosedError while closing, ClientDestroyedError after', async () => {
  const destroyed = new CacheAgent({ store: new MemoryStore() })
  await destroyed.destroy()
  await assert.rejects(request(`${origin.url}/after-destroy`, { dispatcher: destroyed }), {
    name: 'ClientDestroyedError',
  })
  for (const closed of [new Agent(), new CacheAgent({ store: new MemoryStore() })]) {
    const closing = closed.close()
    await assert.rejects(request(`${origin.url}/while-closing`, { dispatcher: closed }), {
      name: 'ClientClosedError',
    })
    await closing
    await assert.rejects(request(`${origin.url}/after-close`, { dispatcher: closed }), {
      name: 'ClientDestroyedError',
    })
  }
})

test('global fetch() honours request Cache-Control (the way to pass directives there)', async () => {
  const response = await globalThis.fetch(`${origin.url}/global`, {
    headers: { 'cache-control': 'no-cache' },
  })
  await response.arrayBuffer()
  assert.equal(origin.count('/global'), 2)
  const onlyCached = await globalThis.fetch(`${origin.url}/not-cached`, {
    headers: { 'cache-control': 'only-if-cached' },
  })
  assert.equal(onlyCached.status, 504)
  assert.equal(origin.count('/not-cached'), 0)
})

test("undici's fetch shares the same cache", async () => {
  const response = await undiciFetch(`${origin.url}/global`)
  assert.equal(await response.text(), 'hello /global')
  assert.match(String(response.headers.get('cache-status')), /^undici-cache; hit/)
  assert.equal(origin.count('/global'), 2)
})

function collector(): { sink: Writable; text: () => string } {
  const chunks: Buffer[] = []
  const sink = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(chunk)
      done()
    },
  })
  return { sink, text: () => Buffer.concat(chunks).toString() }
}

test('stream() is served from the cache', async () => {
  for (let i = 0; i < 2; i++) {
    const { sink, text } = collector()
    await stream(`${origin.url}/stream`, { dispatcher: agent, method: 'GET' }, () => sink)
    assert.equal(text(), 'hello /stream')
  }
  assert.equal(origin.count('/stream'), 1)
})

test('a signal aborted right after request() or stream() returns ends a hit with its reason, as with a plain Agent', async () => {
  const stores: CacheStore[] = [new MemoryStore(), new SqliteStore({ path: join(tempDir(), 'abort.db') })]
  for (const store of stores) {
    const cache = new CacheAgent({ store })
    const url = `${origin.url}/abort-at-once-${stores.indexOf(store)}`
    await (await request(url, { dispatcher: cache })).body.text()
    const askedBefore = origin.count(new URL(url).pathname)
    const byRequest = new AbortController()
    const requested = request(url, { dispatcher: cache, signal: byRequest.signal })
    byRequest.abort()
    await assert.rejects(requested, { name: 'AbortError' })
    const byStream = new AbortController()
    const { sink, text } = collector()
    const streamed = stream(url, { dispatcher: cache, method: 'GET', signal: byStream.signal }, () => sink)
    byStream.abort()
    await assert.rejects(streamed, { name: 'AbortError' })
    assert.equal(text(), '')
    const again = await request(url, { dispatcher: cache })
    assert.match(String(again.headers['cache-status']), /^undici-cache; hit/)
    assert.equal(await again.body.text(), `hello ${new URL(url).pathname}`)
    assert.equal(origin.count(new URL(url).pathname), askedBefore)
    await cache.close()
    await store.close()
  }
})

test('pipeline() is served from the cache', async () => {
  for (let i = 0; i < 2; i++) {
    const { sink, text } = collector()
    const duplex = pipeline(
      `${origin.url}/pipeline`,
      { dispatcher: agent, method: 'GET' },
      ({ body }) => body,
    )
    duplex.end()
    await pipelineAsync(duplex, sink)
    assert.equal(text(), 'hello /pipeline')
  }
  assert.equal(origin.count('/pipeline'), 1)
})

test('CacheAgent#close() waits for the hits still streaming from the store, as undici close() does', async () => {
  const body = Buffer.alloc(2 * 1024 * 1024, 'b')
  const big = await startOrigin((_req, res) =>
    reply(res, 200, { 'cache-control': 'max-age=60' }, body.toString()),
  )
  const path = join(tempDir(), 'cache.db')
  const store = new SqliteStore({ path, bodyFiles: false, chunkBytes: 16 * 1024, hotBytes: 0 })
  const own = new CacheAgent({ store })
  let closing: Promise<void> | undefined
  try {
    await (await request(`${big.url}/big`, { dispatcher: own })).body.arrayBuffer()
    const hit = await request(`${big.url}/big`, { dispatcher: own })
    assert.match(String(hit.headers['cache-status']), /^undici-cache; hit/)
    let closed = false
    closing = own.close().then(() => {
      closed = true
    })
    await new Promise((resolve) => setTimeout(resolve, 100))
    assert.equal(closed, false, 'close() waits while the hit is unread')
    const read = Buffer.from(await hit.body.arrayBuffer())
    await closing
    store.close()
    assert.equal(read.length, body.length)
    assert.ok(read.equals(body))
  } finally {
    await (closing ?? own.close())
    await big.close()
  }
})

test('CacheAgent#close() lets a waiter finish that goes to the origin after close (its leader was not storable), as undici close() does', async () => {
  const slow = await startOrigin((_req, res) =>
    setTimeout(() => reply(res, 200, { 'cache-control': 'no-store' }, 'not for keeping'), 100),
  )
  const own = new CacheAgent({ store: new MemoryStore() })
  const leader = request(`${slow.url}/x`, { dispatcher: own })
  await new Promise((resolve) => setTimeout(resolve, 20))
  const waiter = request(`${slow.url}/x`, { dispatcher: own })
  await new Promise((resolve) => setTimeout(resolve, 20))
  const closing = own.close()
  for (const res of [await leader, await waiter]) assert.equal(await res.body.text(), 'not for keeping')
  await closing
  assert.equal(slow.count('/x'), 2)
  await assert.rejects(request(`${slow.url}/x`, { dispatcher: own }), { name: 'ClientDestroyedError' })
  await slow.close()
})

test('an upgrade passes through the cache untouched, and close() does not wait for the upgraded socket', async () => {
  const server = createServer()
  server.on('upgrade', (_req, socket) => {
    socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  const own = new CacheAgent({ store: new MemoryStore() })
  const { headers, socket } = await upgrade(`http://127.0.0.1:${port}/ws`, {
    dispatcher: own,
    protocol: 'echo',
  })
  assert.equal(headers.upgrade, 'echo')
  const chunks: Buffer[] = []
  for await (const chunk of socket) chunks.push(chunk as Buffer)
  assert.equal(Buffer.concat(chunks).toString(), 'hello')
  await own.close()
  server.close()
})

test('close() and destroy() work on a CacheAgent composed with more interceptors (a Proxy), as on undici Agent', async () => {
  for (const end of ['close', 'destroy'] as const) {
    const own = new CacheAgent({ store: new MemoryStore() })
    const composed = own.compose(interceptors.redirect({ maxRedirections: 2 }))
    await composed[end]()
    await assert.rejects(request(`${origin.url}/after-${end}`, { dispatcher: own }), /closed|destroyed/i)
  }
})

test('destroy() ends a hit still streaming from the store, as undici ends the requests under way', async () => {
  const body = Buffer.alloc(4 * 1024 * 1024, 'd')
  const big = await startOrigin((_req, res) =>
    reply(res, 200, { 'cache-control': 'max-age=60' }, body.toString()),
  )
  const own = new CacheAgent({ store: new MemoryStore({ maxEntryBytes: 8 * 1024 * 1024 }) })
  await (await request(`${big.url}/big`, { dispatcher: own })).body.arrayBuffer()
  const hit = await request(`${big.url}/big`, { dispatcher: own })
  assert.match(String(hit.headers['cache-status']), /^undici-cache; hit/)
  await own.destroy()
  await assert.rejects(hit.body.arrayBuffer(), { name: 'ClientDestroyedError' })
  await big.close()
})

test('destroy(error) ends at once, with that error, a request whose store lookup has not answered yet', async () => {
  let open: () => void = () => {}
  const gate = new Promise<void>((resolve) => {
    open = resolve
  })
  const memory = new MemoryStore()
  const slowStore: CacheStore = {
    get: (key) => gate.then(() => memory.get(key)),
    put: (key, meta, sizeBytes) => memory.put(key, meta, sizeBytes),
    update: (key, id, meta) => memory.update(key, id, meta),
    delete: (key) => memory.delete(key),
    close: () => memory.close(),
  }
  const own = new CacheAgent({ store: slowStore })
  const pending = request(`${origin.url}/slow-lookup`, { dispatcher: own })
  await new Promise((resolve) => setTimeout(resolve, 20))
  const reason = new Error('shutting down')
  await own.destroy(reason)
  await assert.rejects(pending, (error) => error === reason)
  open()
  assert.equal(origin.count('/slow-lookup'), 0)
})
