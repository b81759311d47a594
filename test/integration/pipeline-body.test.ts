import assert from 'node:assert/strict'
import { Readable, Writable } from 'node:stream'
import { pipeline as pipelineAsync } from 'node:stream/promises'
import { after, before, test } from 'node:test'
import { Agent, type Dispatcher, pipeline } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { cacheInterceptor } from '../../lib/interceptor.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

// pipeline() hands undici a stream for what its caller writes, so a pipeline() GET is cached as one
// without content: what a caller writes to one the cache answers is read and dropped, so that writing
// finishes (a stream's buffer holds ~16–64 KiB)

const WRITTEN_BYTES = 512 * 1024

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
