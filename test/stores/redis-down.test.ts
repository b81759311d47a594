/**
 * RedisStore while Redis is down and once it is back: store methods fail at once, requests through a
 * CacheAgent pass through and are cached again, a process exits promptly after close().
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import diagnosticsChannel from 'node:diagnostics_channel'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { describe, test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { Redis } from 'ioredis'
import { storeErrorChannel } from '../../lib/diagnostics.js'
import { RedisStore } from '../../lib/stores/redis-store.js'
import { makeAgent, send, sleep } from '../helpers/client.js'
import type { Origin } from '../helpers/origin.js'
import { entryAt, patternBody, readBody, sampleMeta, storeBody } from './helpers.js'
import { type RedisServer, startRedisServer } from './redis-server.js'
import { freshPrefix, skipReason, startForSuite, waitFor } from './redis-shared-setup.js'

describe('RedisStore shared and failing', { skip: skipReason ?? false }, () => {
  let redis: RedisServer
  let origin: Origin
  startForSuite((server, started) => {
    redis = server
    origin = started
  })

  test("a lookup of a key whose delete Redis never answered fails at once once Redis is gone (a caller's queueing client)", async () => {
    const client = new Redis(redis.url)
    client.on('error', () => {})
    const store = new RedisStore({ client, keyPrefix: freshPrefix() })
    try {
      await storeBody(store, 'k', sampleMeta(), patternBody(10, 1))
      redis.pause()
      // ioredis keeps the delete for after a reconnection that never comes: it never settles
      store.delete('k').catch(() => {})
      await redis.kill()
      await waitFor(() => client.status !== 'ready')
      const startedMs = performance.now()
      await assert.rejects(store.get('k'), /a delete of this key was sent and Redis has not answered it/)
      assert.ok(performance.now() - startedMs < 100, `${performance.now() - startedMs} ms`)
      client.disconnect()
    } finally {
      await store.close()
      await redis.restart()
    }
  })

  test('while Redis is down every store method fails at once; when it is back, it works again', async () => {
    const store = new RedisStore({ url: redis.url, keyPrefix: freshPrefix(), chunkBytes: 1024 })
    await storeBody(store, 'k', sampleMeta(), patternBody(10, 1))
    const writer = store.put('open', sampleMeta())
    await redis.kill()
    await waitFor(() => store.client.status !== 'ready')
    const startedMs = performance.now()
    await assert.rejects(store.get('k'), /undici-cache: Redis is not connected \((reconnecting|connecting)\)/)
    await assert.rejects(store.update('k', 'id', sampleMeta()), /Redis is not connected/)
    await assert.rejects(store.delete('k'), /Redis is not connected/)
    await assert.rejects(async () => writer?.write(patternBody(2000, 2)), /Redis is not connected/)
    const late = new RedisStore({ url: redis.url, keyPrefix: freshPrefix() })
    await assert.rejects(late.get('k'), /Redis is not connected/, 'a store made while Redis is down')
    const elapsedMs = performance.now() - startedMs
    assert.ok(elapsedMs < 100, `${elapsedMs} ms`)
    await late.close()
    await redis.restart()
    await waitFor(() => store.client.status === 'ready')
    assert.equal(late.client.status, 'reconnecting', 'a closed store does not reconnect')
    assert.equal(store.put('k', sampleMeta()) !== undefined, true)
    assert.deepEqual(await store.get('k'), [], 'the restarted server starts empty')
    await storeBody(store, 'k', sampleMeta(), patternBody(3000, 3))
    assert.deepEqual(await readBody(entryAt(await store.get('k'))), patternBody(3000, 3))
    await store.close()
  })

  test('requests through a CacheAgent pass through while Redis is down, and are cached once it is back', async (t) => {
    const store = new RedisStore({ url: redis.url, keyPrefix: freshPrefix() })
    const { agent, close } = makeAgent(store)
    const failures: string[] = []
    const onError = (message: unknown) => failures.push((message as { operation: string }).operation)
    diagnosticsChannel.subscribe(storeErrorChannel.name, onError)
    t.after(() => diagnosticsChannel.unsubscribe(storeErrorChannel.name, onError))
    const url = `${origin.url}/page`
    const before = origin.count('/page')
    assert.equal((await send(agent, url)).headers['cache-status'], 'undici-cache; fwd=miss; stored')
    assert.match(String((await send(agent, url)).headers['cache-status']), /^undici-cache; hit/)
    assert.equal(origin.count('/page'), before + 1)

    await redis.kill()
    await waitFor(() => store.client.status !== 'ready')
    const startedMs = performance.now()
    const down = await send(agent, url)
    const downMs = performance.now() - startedMs
    t.diagnostic(`a request while Redis is down took ${downMs.toFixed(1)} ms`)
    assert.deepEqual([down.status, down.body], [200, 'body of /page'])
    assert.equal(down.headers['cache-status'], 'undici-cache; fwd=miss; detail=store-error')
    assert.ok(downMs < 500, `${downMs} ms`)
    assert.equal(origin.count('/page'), before + 2)
    assert.ok(failures.includes('get'), failures.join())

    await redis.restart()
    await waitFor(() => store.client.status === 'ready')
    assert.equal((await send(agent, url)).headers['cache-status'], 'undici-cache; fwd=miss; stored')
    const hit = await send(agent, url)
    assert.match(String(hit.headers['cache-status']), /^undici-cache; hit/)
    assert.equal(hit.body, 'body of /page')
    assert.equal(origin.count('/page'), before + 3)
    await close()
  })

  test('a process whose Redis went away exits promptly after close()', async () => {
    const script = `
      import { RedisStore } from ${JSON.stringify(pathToFileURL('lib/stores/redis-store.ts').href)}
      const store = new RedisStore({ url: process.env.REDIS_URL })
      await store.get('k')
      process.stdout.write('ready\\n')
      process.stdin.once('data', async () => {
        await store.close()
        const closedMs = performance.now()
        process.on('exit', () => process.stdout.write(String(Math.round(performance.now() - closedMs))))
      })
    `
    const stopped = await startRedisServer()
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, REDIS_URL: stopped.url },
    })
    let output = ''
    child.stdout.on('data', (chunk) => {
      output += chunk
    })
    await waitFor(() => output.includes('ready'))
    await stopped.kill()
    await sleep(300)
    child.stdin.end('close\n')
    await once(child, 'exit')
    const exitMs = Number(output.split('\n')[1])
    assert.ok(exitMs < 1000, `exited ${exitMs} ms after close() (ioredis's own disconnect timer is 2 s)`)
  })
})
