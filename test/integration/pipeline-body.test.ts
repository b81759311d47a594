import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createConnection } from 'node:net'
import { PassThrough, Readable, Writable } from 'node:stream'
import { pipeline as pipelineAsync } from 'node:stream/promises'
import { after, before, test } from 'node:test'
import { Agent, type buildConnector, type Dispatcher, interceptors, pipeline, request } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { cacheInterceptor } from '../../lib/interceptor.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

// pipeline() hands undici a stream for what its caller writes, so a pipeline() GET is cached as one
// without content: what a caller writes to one the cache answers is read and dropped, so that writing
// finishes (a stream's buffer holds ~16–64 KiB)

const WRITTEN_BYTES = 512 * 1024
/** Over MemoryStore's one-Buffer limit (8 MiB): kept and served in 1 MiB pieces. */
const BIG_BYTES = 12 * 1024 * 1024

let origin: Origin
/** The bytes of each request's body that reached the origin, by path. */
const received = new Map<string, number[]>()

before(async () => {
  origin = await startOrigin((req, res) => {
    let bytes = 0
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length
    })
    req.on('end', () => {
      const path = req.url ?? ''
      received.set(path, [...(received.get(path) ?? []), bytes])
      const delayMs = path.startsWith('/slow') ? 150 : 0
      const cacheControl = path.startsWith('/swr') ? 'max-age=0, stale-while-revalidate=60' : 'max-age=60'
      const headers = { 'cache-control': cacheControl, etag: '"v1"' }
      setTimeout(() => reply(res, 200, headers, `page ${path}`), delayMs)
    })
  })
})

after(() => origin.close())

/** A pipeline() GET that writes `bytes`; what it answered, and the Cache-Status it said. */
async function pipelineGet(
  agent: Dispatcher,
  path: string,
  bytes: number,
  headers: Record<string, string> = {},
): Promise<{ text: string; statusCode: number; cacheStatus: string }> {
  const chunks: Buffer[] = []
  let statusCode = 0
  let cacheStatus = ''
  const duplex = pipeline(`${origin.url}${path}`, { dispatcher: agent, method: 'GET', headers }, (data) => {
    statusCode = data.statusCode
    cacheStatus = String(data.headers['cache-status'])
    return data.body
  })
  const sink = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(chunk)
      done()
    },
  })
  const timeout = AbortSignal.timeout(5000)
  await pipelineAsync(Readable.from(writtenChunks(bytes)), duplex, sink, { signal: timeout })
  return { text: Buffer.concat(chunks).toString(), statusCode, cacheStatus }
}

function* writtenChunks(bytes: number): Generator<Buffer> {
  for (let left = bytes; left > 0; left -= 16 * 1024) yield Buffer.alloc(Math.min(left, 16 * 1024), 'w')
}

test('a pipeline() GET hit reads and drops what its caller writes, so that writing finishes', async () => {
  const agent = new CacheAgent({ store: new MemoryStore() })
  try {
    const miss = await pipelineGet(agent, '/hit', WRITTEN_BYTES)
    assert.equal(miss.text, 'page /hit')
    assert.match(miss.cacheStatus, /^undici-cache; fwd=miss; stored/)
    assert.deepEqual(received.get('/hit'), [WRITTEN_BYTES], 'the miss sent what was written')
    const hit = await pipelineGet(agent, '/hit', WRITTEN_BYTES)
    assert.equal(hit.text, 'page /hit')
    assert.match(hit.cacheStatus, /^undici-cache; hit/)
    assert.equal(origin.count('/hit'), 1)
    assert.deepEqual(received.get('/hit'), [WRITTEN_BYTES])
  } finally {
    await agent.close()
  }
})

test('a pipeline() GET answered 504 by only-if-cached reads and drops what its caller writes', async () => {
  const agent = new CacheAgent({ store: new MemoryStore() })
  try {
    const answer = await pipelineGet(agent, '/only', WRITTEN_BYTES, { 'cache-control': 'only-if-cached' })
    assert.equal(answer.statusCode, 504)
    assert.match(answer.cacheStatus, /detail=only-if-cached/)
    assert.equal(origin.count('/only'), 0)
  } finally {
    await agent.close()
  }
})

test('a pipeline() GET that waited on an identical one and was served what it stored reads and drops what its caller writes', async () => {
  const agent = new CacheAgent({ store: new MemoryStore() })
  try {
    const [first, second] = await Promise.all([
      pipelineGet(agent, '/slow', WRITTEN_BYTES),
      pipelineGet(agent, '/slow', WRITTEN_BYTES),
    ])
    assert.equal(first.text, 'page /slow')
    assert.equal(second.text, 'page /slow')
    const statuses = [first.cacheStatus, second.cacheStatus].sort()
    assert.deepEqual(statuses, [
      'undici-cache; fwd=miss; collapsed',
      'undici-cache; fwd=miss; stored; collapsed',
    ])
    assert.equal(origin.count('/slow'), 1)
    assert.deepEqual(received.get('/slow'), [WRITTEN_BYTES])
  } finally {
    await agent.close()
  }
})

test("a pipeline() GET served stale while the cache revalidates gives none of its caller's body to the revalidation", async () => {
  // what the cache hands the dispatcher under it, by the request's If-None-Match
  const bodies: { conditional: boolean; body: unknown }[] = []
  const recorder: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) => {
    const headers = opts.headers as Record<string, string> | undefined
    bodies.push({ conditional: headers?.['if-none-match'] !== undefined, body: opts.body })
    return dispatch(opts, handler)
  }
  const agent = new Agent().compose(recorder, cacheInterceptor({ store: new MemoryStore() }))
  try {
    await pipelineGet(agent, '/swr', 0)
    await new Promise((resolve) => setTimeout(resolve, 1100))
    const stale = await pipelineGet(agent, '/swr', WRITTEN_BYTES)
    assert.equal(stale.text, 'page /swr')
    assert.match(stale.cacheStatus, /^undici-cache; hit; ttl=-/)
    for (let i = 0; i < 50 && origin.count('/swr') < 2; i++) await new Promise((r) => setTimeout(r, 20))
    assert.equal(origin.count('/swr'), 2, 'the background revalidation reached the origin')
    assert.equal(bodies.length, 2)
    assert.equal(bodies[0]?.conditional, false)
    assert.ok(bodies[0]?.body instanceof Readable, "the miss is sent with the caller's stream")
    assert.deepEqual(bodies[1], { conditional: true, body: null })
  } finally {
    await agent.close()
  }
})

test('a pipeline() GET hit whose caller writes before it reads gets the whole cached body (read and dropped from the start)', async () => {
  const big = await startOrigin((req, res) => {
    req.resume()
    req.on('end', () => reply(res, 200, { 'cache-control': 'max-age=60' }, 'b'.repeat(BIG_BYTES)))
  })
  // held in 1 MiB pieces: the caller's pipeline takes them one at a time
  const agent = new CacheAgent({ store: new MemoryStore({ maxEntryBytes: 2 * BIG_BYTES }) })
  try {
    await (await request(`${big.url}/big`, { dispatcher: agent })).body.arrayBuffer()
    let cacheStatus = ''
    const duplex = pipeline(`${big.url}/big`, { dispatcher: agent, method: 'GET' }, (data) => {
      cacheStatus = String(data.headers['cache-status'])
      return data.body
    })
    const read = (async () => {
      for (const chunk of writtenChunks(WRITTEN_BYTES)) if (!duplex.write(chunk)) await once(duplex, 'drain')
      duplex.end()
      let bytes = 0
      for await (const chunk of duplex) bytes += chunk.length
      return bytes
    })()
    const timeout = new Promise((resolve) => setTimeout(() => resolve('stuck for 5 s'), 5000).unref())
    assert.equal(await Promise.race([read, timeout]), BIG_BYTES)
    assert.match(cacheStatus, /^undici-cache; hit/)
    assert.equal(big.count('/big'), 1)
  } finally {
    await agent.destroy() // a hit still stuck would keep close() waiting
    await big.close()
  }
})

test("a request's body stream the cache did not answer is left to undici: a POST retried after a refused connection sends it whole", async () => {
  const echo = await startOrigin((req, res) => {
    let got = ''
    req.on('data', (chunk) => {
      got += chunk
    })
    req.on('end', () => reply(res, 200, {}, `received ${got}`))
  })
  const port = Number(new URL(echo.url).port)
  // the first connection is refused (an origin restarting), the next one connects
  let attempts = 0
  const connect: buildConnector.connector = (_options, callback) => {
    if (attempts++ === 0) {
      queueMicrotask(() => callback(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), null))
      return
    }
    const socket = createConnection(port, '127.0.0.1')
    socket.once('connect', () => callback(null, socket)).once('error', (error) => callback(error, null))
  }
  const retry = interceptors.retry({ minTimeout: 20, maxRetries: 3, methods: ['POST'] })
  const agent = new CacheAgent({ store: new MemoryStore(), agent: { connect } })
  try {
    const body = new PassThrough()
    body.end('precious data')
    const response = await request(`${echo.url}/submit`, {
      dispatcher: agent.compose(retry),
      method: 'POST',
      body,
    })
    assert.equal(await response.body.text(), 'received precious data')
    assert.equal(attempts, 2)
  } finally {
    await agent.close()
    await echo.close()
  }
})

test('an only-if-cached POST answered 504 leaves its body stream unread (only a pipeline() stream is drained)', async () => {
  const agent = new CacheAgent({ store: new MemoryStore() })
  try {
    let readBytes = 0
    const body = new Readable({
      read() {
        readBytes += 1024
        this.push(readBytes > 64 * 1024 ? null : Buffer.alloc(1024))
      },
    })
    const headers = { 'cache-control': 'only-if-cached' }
    const response = await request(`${origin.url}/post-only`, {
      dispatcher: agent,
      method: 'POST',
      headers,
      body,
    })
    assert.equal(response.statusCode, 504)
    await response.body.dump()
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.ok(readBytes <= 16 * 1024, `read ${readBytes} bytes of a body never sent`)
    assert.equal(origin.count('/post-only'), 0)
  } finally {
    await agent.close()
  }
})
