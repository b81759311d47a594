/**
 * RedisStore when Redis stops answering: one command waits timeoutSeconds and the others fail at once
 * until a PING is answered, writes and close() under way, through a CacheAgent, and on an ioredis Cluster.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { describe, test } from 'node:test'
import { Cluster, Redis } from 'ioredis'
import { STALL_RETRY_MS } from '../../lib/stores/redis-connection.js'
import { RedisStore } from '../../lib/stores/redis-store.js'
import { makeAgent, send, sleep } from '../helpers/client.js'
import type { Origin } from '../helpers/origin.js'
import { patternBody, sampleMeta, storeBody } from './helpers.js'
import { type RedisServer, startRedisServer } from './redis-server.js'
import { freshPrefix, skipReason, startForSuite, waitFor } from './redis-shared-setup.js'

describe('RedisStore shared and failing', { skip: skipReason ?? false }, () => {
  let redis: RedisServer
  let origin: Origin
  startForSuite((server, started) => {
    redis = server
    origin = started
  })

  /** Retries `get` while it fails at once for a stalled connection; fails after `timeoutMs`. */
  async function getOnceAnswering(store: RedisStore, key: string, timeoutMs: number) {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      try {
        return await store.get(key)
      } catch (error) {
        assert.match((error as Error).message, /did not answer in time/)
        if (performance.now() > deadline) throw error
        await sleep(20)
      }
    }
  }

  test('while Redis hangs, one command waits timeoutSeconds, then the others fail at once until it answers a PING', async () => {
    const store = new RedisStore({ url: redis.url, keyPrefix: freshPrefix(), timeoutSeconds: 0.3 })
    await storeBody(store, 'k', sampleMeta(), patternBody(10, 1))
    redis.pause()
    try {
      const startedMs = performance.now()
      await assert.rejects(store.get('k'), /Command timed out/)
      const firstMs = performance.now() - startedMs
      assert.ok(firstMs >= 290 && firstMs < 1000, `${firstMs} ms`)
      const nextMs = performance.now()
      await assert.rejects(store.get('k'), /Redis did not answer in time/)
      await assert.rejects(store.update('k', 'id', sampleMeta()), /did not answer in time/)
      await assert.rejects(store.delete('k'), /did not answer in time/)
      assert.throws(() => store.put('j', sampleMeta()), /did not answer in time/)
      assert.ok(performance.now() - nextMs < 50, `${performance.now() - nextMs} ms`)
      // still frozen past the first PING's timeout: still at once
      await sleep(400)
      const laterMs = performance.now()
      await assert.rejects(store.get('k'), /did not answer in time/)
      assert.ok(performance.now() - laterMs < 50, `${performance.now() - laterMs} ms`)
    } finally {
      redis.resume()
    }
    const resumedMs = performance.now()
    assert.equal((await getOnceAnswering(store, 'k', STALL_RETRY_MS + 1000)).length, 1)
    const recoveredMs = performance.now() - resumedMs
    assert.ok(recoveredMs < STALL_RETRY_MS + 500, `answering again ${recoveredMs} ms after Redis resumed`)
    await store.close()
  })

  test('a PING answered with an error (a user whose ACL forbids PING) ends the stall too', async () => {
    const admin = new Redis(redis.url)
    await admin.call('ACL', 'SETUSER', 'no-ping', 'on', '>secret', '~*', '&*', '+@all', '-ping')
    const store = new RedisStore({
      url: `redis://no-ping:secret@127.0.0.1:${redis.port}`,
      keyPrefix: freshPrefix(),
      timeoutSeconds: 0.3,
    })
    try {
      await storeBody(store, 'k', sampleMeta(), patternBody(10, 1))
      redis.pause()
      try {
        await assert.rejects(store.get('k'), /Command timed out/)
      } finally {
        redis.resume()
      }
      const resumedMs = performance.now()
      assert.equal((await getOnceAnswering(store, 'k', STALL_RETRY_MS + 1000)).length, 1)
      assert.ok(performance.now() - resumedMs < STALL_RETRY_MS + 500)
    } finally {
      await store.close()
      await admin.call('ACL', 'DELUSER', 'no-ping')
      admin.disconnect()
    }
  })

  test('a body being written when Redis stops answering is deleted once it answers again', async () => {
    const prefix = freshPrefix()
    const store = new RedisStore({ url: redis.url, keyPrefix: prefix, timeoutSeconds: 0.3, chunkBytes: 1024 })
    const admin = new Redis(redis.url)
    try {
      const writer = store.put('k', sampleMeta())
      await writer?.write(patternBody(3000, 1))
      assert.equal((await admin.keys(`${prefix}*`)).length, 1, 'the body key being written')
      redis.pause()
      try {
        // the appends after the first go out without waiting: the commit waits for their answers
        await assert.rejects(async () => {
          await writer?.write(patternBody(3000, 2))
          await writer?.commit()
        }, /Command timed out/)
      } finally {
        redis.resume()
      }
      const deadline = performance.now() + 2000
      while ((await admin.keys(`${prefix}*`)).length > 0 && performance.now() < deadline) await sleep(20)
      assert.deepEqual(await admin.keys(`${prefix}*`), [])
    } finally {
      await store.close()
      admin.disconnect()
    }
  })

  test('close() deletes the bodies of the writes it drops, and of those aborted just before', async () => {
    const prefix = freshPrefix()
    const store = new RedisStore({ url: redis.url, keyPrefix: prefix, chunkBytes: 1024 })
    const admin = new Redis(redis.url)
    try {
      const writer = store.put('k', sampleMeta())
      await writer?.write(patternBody(3000, 1))
      writer?.write(patternBody(3000, 2))
      const aborted = store.put('j', sampleMeta())
      await aborted?.write(patternBody(3000, 3))
      assert.equal((await admin.keys(`${prefix}*`)).length, 2, 'the body keys being written')
      aborted?.abort()
      await store.close()
      assert.deepEqual(await admin.keys(`${prefix}*`), [])
    } finally {
      admin.disconnect()
    }
  })

  test('closing a store with writes under way as Redis stops answering takes one timeoutSeconds', async () => {
    const store = new RedisStore({
      url: redis.url,
      keyPrefix: freshPrefix(),
      timeoutSeconds: 0.5,
      chunkBytes: 1024,
    })
    const writers = Array.from({ length: 5 }, (_, i) => store.put(`k${i}`, sampleMeta()))
    for (const writer of writers) await writer?.write(patternBody(3000, 1))
    redis.pause()
    try {
      for (const writer of writers) writer?.write(patternBody(3000, 2))
      const closingMs = performance.now()
      await store.close()
      const tookMs = performance.now() - closingMs
      assert.ok(tookMs >= 450 && tookMs < 800, `close() took ${tookMs} ms`)
    } finally {
      redis.resume()
    }
  })

  test('closing a store whose Redis does not answer takes no timeoutSeconds', async () => {
    const store = new RedisStore({ url: redis.url, keyPrefix: freshPrefix(), timeoutSeconds: 2 })
    await storeBody(store, 'k', sampleMeta(), patternBody(10, 1))
    redis.pause()
    try {
      await assert.rejects(store.get('k'), /Command timed out/)
      const closingMs = performance.now()
      await store.close()
      assert.ok(performance.now() - closingMs < 200, `close() took ${performance.now() - closingMs} ms`)
    } finally {
      redis.resume()
    }
  })

  test("a caller's client with an offline queue is sent no PING while Redis is down", async () => {
    const client = new Redis(redis.url, { commandTimeout: 300, maxRetriesPerRequest: null })
    client.on('error', () => {}) // the connection refused while Redis is down
    const store = new RedisStore({ client, keyPrefix: freshPrefix() })
    try {
      await storeBody(store, 'k', sampleMeta(), patternBody(10, 1))
      redis.pause()
      try {
        await assert.rejects(store.get('k'), /Command timed out/)
        await redis.kill()
      } finally {
        redis.resume()
      }
      // down for 5 s: a PING a second into the offline queue would make about 5 more
      await sleep(5000)
      await redis.restart()
      await waitFor(() => client.status === 'ready')
      await getOnceAnswering(store, 'k', STALL_RETRY_MS + 1000)
      const stats = String(await client.call('INFO', 'commandstats'))
      const pings = Number(/cmdstat_ping:calls=(\d+)/.exec(stats)?.[1] ?? 0)
      // the one in flight as Redis went away (resent on reconnection, as ioredis does) and the next
      assert.ok(pings <= 3, `the restarted Redis got ${pings} PINGs`)
    } finally {
      await store.close()
      client.disconnect()
    }
  })

  test('through a CacheAgent, a frozen Redis holds up one request for timeoutSeconds; the next go to the origin at once', async (t) => {
    const store = new RedisStore({ url: redis.url, keyPrefix: freshPrefix(), timeoutSeconds: 0.3 })
    const { agent, close } = makeAgent(store)
    const url = `${origin.url}/frozen`
    const before = origin.count('/frozen')
    assert.equal((await send(agent, url)).headers['cache-status'], 'undici-cache; fwd=miss; stored')
    redis.pause()
    const timesMs: number[] = []
    try {
      for (let i = 0; i < 3; i++) {
        const startedMs = performance.now()
        const passed = await send(agent, url)
        timesMs.push(performance.now() - startedMs)
        assert.deepEqual([passed.status, passed.body], [200, 'body of /frozen'])
        assert.match(String(passed.headers['cache-status']), /; detail=store-error$/)
      }
    } finally {
      redis.resume()
    }
    t.diagnostic(`requests while Redis was frozen took ${timesMs.map((ms) => ms.toFixed(1)).join(', ')} ms`)
    const [firstMs = 0, secondMs = Infinity, thirdMs = Infinity] = timesMs
    assert.ok(firstMs >= 290, `first ${firstMs} ms`)
    assert.ok(secondMs < 100 && thirdMs < 100, `then ${secondMs} and ${thirdMs} ms`)
    assert.equal(origin.count('/frozen'), before + 4)
    await getOnceAnswering(store, 'any', STALL_RETRY_MS + 1000)
    assert.match(String((await send(agent, url)).headers['cache-status']), /^undici-cache; hit/)
    assert.equal(origin.count('/frozen'), before + 4)
    await close()
  })
})

/** Three masters on free ports, slots split 0-5460, 5461-10922, 10923-16383 in that order. */
async function startCluster(): Promise<RedisServer[]> {
  const nodes = await Promise.all([0, 1, 2].map(() => startRedisServer(['--cluster-enabled', 'yes'])))
  const admins = nodes.map((node) => new Redis(node.url))
  const ranges = [
    [0, 5460],
    [5461, 10922],
    [10923, 16383],
  ]
  try {
    for (const [index, admin] of admins.entries())
      await admin.call('CLUSTER', 'ADDSLOTSRANGE', ...(ranges[index] ?? []))
    for (const node of nodes.slice(1)) await admins[0]?.call('CLUSTER', 'MEET', '127.0.0.1', node.port)
    const clusterOk = async () =>
      (await Promise.all(admins.map((admin) => admin.call('CLUSTER', 'INFO')))).every((info) =>
        String(info).includes('cluster_state:ok'),
      )
    const deadline = performance.now() + 10_000
    while (!(await clusterOk())) {
      if (performance.now() > deadline) throw new Error('the Redis cluster did not form')
      await sleep(50)
    }
  } finally {
    for (const admin of admins) admin.disconnect()
  }
  return nodes
}

describe('RedisStore on an ioredis Cluster', { skip: skipReason ?? false }, () => {
  test('a frozen node does not make the store fail at once for keys on the other nodes (no stall)', async () => {
    const nodes = await startCluster()
    const cluster = new Cluster(
      nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
      { redisOptions: { commandTimeout: 300 } },
    )
    cluster.on('error', () => {})
    await once(cluster, 'ready')
    const store = new RedisStore({ client: cluster, keyPrefix: 'c:' })
    try {
      // the first node holds slots 0-5460; the store's keys for `key` share the slot of its hash tag
      const slotOf = async (key: string) =>
        Number(
          await cluster.call(
            'CLUSTER',
            'KEYSLOT',
            createHash('sha256').update(key).digest('hex').slice(0, 32),
          ),
        )
      const keys = Array.from({ length: 40 }, (_, i) => `key-${i}`)
      const slots = await Promise.all(keys.map(slotOf))
      const onFrozen = keys.find((_, i) => (slots[i] ?? 0) <= 5460) as string
      const onOthers = keys.find((_, i) => (slots[i] ?? 0) > 5460) as string
      await storeBody(store, onFrozen, sampleMeta(), patternBody(10, 1))
      await storeBody(store, onOthers, sampleMeta(), patternBody(10, 2))
      nodes[0]?.pause()
      try {
        await assert.rejects(store.get(onFrozen), /Command timed out/)
        for (let i = 0; i < 3; i++) {
          const startedMs = performance.now()
          assert.equal((await store.get(onOthers)).length, 1)
          // well under the 300 ms a stall would take (a busy machine took 157 ms once)
          assert.ok(performance.now() - startedMs < 250, `${performance.now() - startedMs} ms`)
        }
      } finally {
        nodes[0]?.resume()
      }
    } finally {
      await store.close()
      cluster.disconnect()
      for (const node of nodes) await node.stop()
    }
  })
})
