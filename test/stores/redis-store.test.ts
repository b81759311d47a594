import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { Redis } from 'ioredis'
import { loadRedisConstructor } from '../../lib/stores/redis-connection.js'
import { REDIS_STORE_DEFAULTS, RedisStore } from '../../lib/stores/redis-store.js'
import { PENDING_IDLE_TTL_MS } from '../../lib/stores/redis-writer.js'
import type { CacheStore } from '../../lib/stores/store.js'
import { CONTRACT_CHUNK_BYTES, runStoreContract } from './contract.js'
import { entryAt, patternBody, readBody, sampleMeta, storeBody } from './helpers.js'
import { type RedisServer, redisSkipReason, startRedisServer } from './redis-server.js'

const skipReason = redisSkipReason()
const server = skipReason === undefined ? await startRedisServer() : undefined
after(() => server?.stop())
const redis = () => server as RedisServer
let prefixes = 0
/** A key prefix no other store of this file uses, so every store starts empty. */
const freshPrefix = (name: string) => `test:${name}:${prefixes++}:`

if (server) {
  const shared = new Redis(server.url)
  runStoreContract(
    'RedisStore',
    (limits) =>
      new RedisStore({
        client: shared,
        keyPrefix: freshPrefix('contract'),
        maxEntryBytes: limits.maxEntryBytes,
        chunkBytes: CONTRACT_CHUNK_BYTES,
      }),
    () => shared.quit(),
    { noEvictionReason: 'RedisStore leaves eviction to Redis (maxmemory and maxmemory-policy)' },
  )
}

test('bad RedisStore options throw an error naming the option', () => {
  const client = { status: 'ready', callBuffer: async () => null, quit: async () => 'OK' }
  const cases: [unknown, string, RegExp][] = [
    ['redis://x', 'TypeError', /options must be an object/],
    [{}, 'TypeError', /exactly one of the options client and url/],
    [{ client, url: 'redis://127.0.0.1' }, 'TypeError', /exactly one of/],
    [{ client: {} }, 'TypeError', /option client must be an ioredis client/],
    [{ url: 5 }, 'TypeError', /option url must be a non-empty string/],
    [{ url: 'http://127.0.0.1' }, 'RangeError', /option url must be a redis:\/\/ or rediss:\/\/ URL/],
    [{ url: 'not a url' }, 'RangeError', /option url/],
    [{ client, keyPrefix: '' }, 'RangeError', /option keyPrefix/],
    [{ client, maxEntryBytes: 0 }, 'RangeError', /option maxEntryBytes must be a positive integer \(bytes\)/],
    [{ client, chunkBytes: 1023 }, 'RangeError', /option chunkBytes must be an integer >= 1024 \(bytes\)/],
    [{ client, maxTtlSeconds: '60' }, 'TypeError', /option maxTtlSeconds .*\(seconds\)/],
    [{ client, minTtlSeconds: 1.5 }, 'RangeError', /option minTtlSeconds/],
    [{ client, minTtlSeconds: 120, maxTtlSeconds: 60 }, 'RangeError', /minTtlSeconds must not exceed/],
    [{ client, timeoutSeconds: 0 }, 'RangeError', /option timeoutSeconds must be a positive number/],
    [{ client, timeoutSeconds: 'soon' }, 'TypeError', /option timeoutSeconds .*got a string/],
    [{ client, maxBytes: 1 }, 'TypeError', /RedisStore has no option maxBytes/],
  ]
  for (const [options, name, message] of cases) {
    assert.throws(() => new RedisStore(options as never), { name, message }, JSON.stringify(options))
  }
  const store = new RedisStore({ client, timeoutSeconds: 0.5 })
  assert.deepEqual(store.limits, { ...REDIS_STORE_DEFAULTS, timeoutSeconds: 0.5 })
  assert.deepEqual(REDIS_STORE_DEFAULTS, {
    keyPrefix: 'undici-cache:',
    maxEntryBytes: 8 * 1024 * 1024,
    chunkBytes: 64 * 1024,
    maxTtlSeconds: 7 * 24 * 3600,
    minTtlSeconds: 60,
    timeoutSeconds: 2,
  })
  assert.equal(store.client, client)
})

test('a missing ioredis package gives an error that names it', () => {
  const missing = () => {
    throw Object.assign(new Error("Cannot find module 'ioredis'"), { code: 'MODULE_NOT_FOUND' })
  }
  assert.throws(() => loadRedisConstructor(missing), {
    message: 'undici-cache: RedisStore({ url }) needs the ioredis package (npm install ioredis)',
  })
  assert.equal(loadRedisConstructor(), Redis)
})

describe('RedisStore against a real redis-server', { skip: skipReason ?? false }, () => {
  test('smoke', async () => {
    const store = new RedisStore({ url: redis().url, keyPrefix: freshPrefix('smoke') })
    await storeBody(store, 'k', sampleMeta(), patternBody(200_000, 1), 7000)
    const entry = entryAt(await store.get('k'))
    assert.deepEqual(await readBody(entry), patternBody(200_000, 1))
    await store.close()
  })
})

export type { CacheStore }
export { PENDING_IDLE_TTL_MS }
