/**
 * RedisStore under a CacheAgent, shared: another machine's invalidations and deletes (also after Redis
 * forgot its scripts or restarted empty), TTLs in whole milliseconds, and two processes sharing one cache.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import diagnosticsChannel from 'node:diagnostics_channel'
import { describe, test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { storeErrorChannel } from '../../lib/diagnostics.js'
import { RedisStore } from '../../lib/stores/redis-store.js'
import { makeAgent, send, sleep } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'
import { patternBody, sampleMeta, storeBody } from './helpers.js'
import type { RedisServer } from './redis-server.js'
import { freshPrefix, LARGE_BODY, skipReason, startForSuite, waitFor } from './redis-shared-setup.js'

const run = promisify(execFile)

/** The child's script: one request through a CacheAgent on a RedisStore made from REDIS_URL. */
const CHILD_SCRIPT = `
import { request } from 'undici'
import { CacheAgent } from ${JSON.stringify(pathToFileURL('lib/cache-agent.ts').href)}
import { RedisStore } from ${JSON.stringify(pathToFileURL('lib/stores/redis-store.ts').href)}
const store = new RedisStore({ url: process.env.REDIS_URL, keyPrefix: process.env.KEY_PREFIX })
const agent = new CacheAgent({ store })
const response = await request(process.env.TARGET, { dispatcher: agent })
const body = await response.body.text()
const cacheStatus = response.headers['cache-status']
process.stdout.write(JSON.stringify({ status: response.statusCode, cacheStatus, length: body.length }))
await agent.close()
await store.close()
`

describe('RedisStore shared and failing', { skip: skipReason ?? false }, () => {
  let redis: RedisServer
  let origin: Origin
  startForSuite((server, started) => {
    redis = server
    origin = started
  })

  test("another machine's invalidation keeps out the background revalidation it raced (RFC 9111 §4.4)", async () => {
    let version = 0
    let release: (() => void) | undefined
    const revalidated = await startOrigin(async (req, res) => {
      if (req.method === 'POST') {
        version += 1
        return reply(res, 204, {})
      }
      const answered = version
      if (release === undefined && answered === 0 && revalidated.count('/doc') > 1)
        await new Promise<void>((resolve) => {
          release = resolve
        })
      const headers = { 'cache-control': 'max-age=0, stale-while-revalidate=60', etag: `"v${answered}"` }
      reply(res, 200, headers, `v${answered}`)
    })
    const keyPrefix = freshPrefix()
    const [here, elsewhere] = [0, 1].map(() => makeAgent(new RedisStore({ url: redis.url, keyPrefix })))
    assert.ok(here && elsewhere)
    try {
      const url = `${revalidated.url}/doc`
      assert.equal((await send(here.agent, url)).headers['cache-status'], 'undici-cache; fwd=miss; stored')
      const stale = await send(here.agent, url)
      assert.equal(stale.body, 'v0')
      await waitFor(() => release !== undefined)
      await send(elsewhere.agent, url, { method: 'POST' })
      release?.()
      await sleep(100)
      const after = await send(here.agent, url)
      assert.equal(after.body, 'v1')
      assert.equal(after.headers['cache-status'], 'undici-cache; fwd=miss; stored')
    } finally {
      await here.close()
      await elsewhere.close()
      await revalidated.close()
    }
  })

  test('after Redis forgot its scripts (a restart, SCRIPT FLUSH), a GET sent after a POST is not served what the POST invalidated', async () => {
    // the delete's script is re-sent after Redis refuses it, behind the lookup sent meanwhile
    let version = 0
    const written = await startOrigin((req, res) => {
      if (req.method === 'POST') version += 1
      reply(res, 200, { 'cache-control': 'max-age=60' }, `v${version}`)
    })
    const admin = new Redis(redis.url)
    const cache = makeAgent(new RedisStore({ url: redis.url, keyPrefix: freshPrefix() }))
    try {
      await admin.script('FLUSH')
      const url = `${written.url}/doc`
      await send(cache.agent, url)
      assert.match(String((await send(cache.agent, url)).headers['cache-status']), /^undici-cache; hit;/)
      assert.equal((await send(cache.agent, url, { method: 'POST' })).body, 'v1')
      const after = await send(cache.agent, url)
      assert.deepEqual([after.body, after.headers['cache-status']], ['v1', 'undici-cache; fwd=miss; stored'])
    } finally {
      await cache.close()
      admin.disconnect()
      await written.close()
    }
  })

  test("after Redis restarted empty, another machine's delete still keeps out a write looked up before the restart", async () => {
    const keyPrefix = freshPrefix()
    const [here, elsewhere] = [0, 1].map(() => new RedisStore({ url: redis.url, keyPrefix }))
    assert.ok(here && elsewhere)
    try {
      await elsewhere.delete('k')
      await sleep(2)
      const sentMs = Date.now()
      await here.get('k')
      await redis.restart()
      await waitFor(() => here.client.status === 'ready' && elsewhere.client.status === 'ready')
      // a count of deletions would start again where the lookup saw it
      await elsewhere.delete('k')
      await storeBody(here, 'k', sampleMeta({ requestTimeMs: sentMs }), patternBody(9, 1))
      assert.deepEqual(await elsewhere.get('k'), [], 'its response may predate the delete')
    } finally {
      await Promise.all([here.close(), elsewhere.close()])
    }
  })

  test('a cache.ttl in fractions of a second stores an entry that expires (Redis takes whole milliseconds)', async (t) => {
    const errors: unknown[] = []
    const onError = (message: unknown) => errors.push(message)
    diagnosticsChannel.subscribe(storeErrorChannel.name, onError)
    t.after(() => diagnosticsChannel.unsubscribe(storeErrorChannel.name, onError))
    const keyPrefix = freshPrefix()
    const admin = new Redis(redis.url)
    const cache = makeAgent(new RedisStore({ url: redis.url, keyPrefix }))
    try {
      const url = `${origin.url}/fractional-ttl`
      assert.equal(
        (await send(cache.agent, url, { cache: { ttl: 120.0005 } })).body,
        'body of /fractional-ttl',
      )
      const hit = await send(cache.agent, url, { cache: { ttl: 120.0005 } })
      assert.match(String(hit.headers['cache-status']), /^undici-cache; hit/)
      assert.deepEqual(errors, [])
      const keys = await admin.keys(`${keyPrefix}*`)
      assert.ok(keys.length > 0)
      for (const key of keys) assert.ok((await admin.pttl(key)) > 0, key)
    } finally {
      await cache.close()
      admin.disconnect()
    }
  })

  test('two processes share one cache: the parent is served what a child process stored', async () => {
    const keyPrefix = freshPrefix()
    const target = `${origin.url}/large`
    const env = { ...process.env, REDIS_URL: redis.url, KEY_PREFIX: keyPrefix, TARGET: target }
    const args = ['--import', 'tsx', '--input-type=module', '-e', CHILD_SCRIPT]
    const { stdout } = await run(process.execPath, args, { env })
    assert.deepEqual(JSON.parse(stdout), {
      status: 200,
      cacheStatus: 'undici-cache; fwd=miss; stored',
      length: LARGE_BODY.length,
    })
    const store = new RedisStore({ url: redis.url, keyPrefix })
    const { agent, close } = makeAgent(store)
    const hit = await send(agent, target)
    assert.match(String(hit.headers['cache-status']), /^undici-cache; hit/)
    assert.equal(hit.body, LARGE_BODY)
    assert.equal(origin.count('/large'), 1)
    await close()
  })

  test("a revalidation's full answer without Content-Length that Redis gives up on as too large puts the entry aside (its writes are asynchronous)", async () => {
    let version = 1
    const changing = await startOrigin((_req, res) => {
      res.setHeader('cache-control', 'max-age=1')
      res.setHeader('etag', `"v${version}"`)
      if (version === 1) return void res.end('small v1')
      for (let i = 0; i < 16; i++) res.write(Buffer.alloc(64 * 1024, 'b')) // 1 MiB, chunked
      res.end()
    })
    const store = new RedisStore({ url: redis.url, keyPrefix: freshPrefix(), maxEntryBytes: 256 * 1024 })
    const { agent, close } = makeAgent(store)
    try {
      await send(agent, `${changing.url}/doc`)
      await sleep(1100)
      version = 2
      const statuses: string[] = []
      for (let i = 0; i < 3; i++)
        statuses.push(String((await send(agent, `${changing.url}/doc`)).headers['cache-status']))
      assert.deepEqual(statuses, [
        'undici-cache; fwd=stale; stored',
        'undici-cache; fwd=miss; stored',
        'undici-cache; fwd=miss; stored',
      ])
      const conditional = changing.requests.map((seen) => seen.headers['if-none-match'] ?? '-')
      assert.deepEqual(conditional, ['-', '"v1"', '-', '-'], 'the stale v1 is not revalidated again')
    } finally {
      await close()
      await changing.close()
    }
  })
})
