import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, describe, test } from 'node:test'
import { Redis } from 'ioredis'
import { storeErrorChannel } from '../../lib/diagnostics.js'
import { loadRedisConstructor } from '../../lib/stores/redis-connection.js'
import { DELETIONS_KEPT_MS, REPLACED_BODY_GRACE_MS } from '../../lib/stores/redis-scripts.js'
import { REDIS_STORE_DEFAULTS, RedisStore } from '../../lib/stores/redis-store.js'
import { PENDING_IDLE_TTL_MS } from '../../lib/stores/redis-writer.js'
import { sleep } from '../helpers/client.js'
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
    {
      noEvictionReason: 'RedisStore leaves eviction to Redis (maxmemory and maxmemory-policy)',
      readsRanges: true,
    },
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
    [
      { client, chunkBytes: 1023 },
      'RangeError',
      /option chunkBytes must be an integer from 1024 to 16777216 \(bytes\)/,
    ],
    [
      { client, chunkBytes: 2 ** 40 },
      'RangeError',
      /option chunkBytes must be an integer from 1024 to 16777216/,
    ],
    [{ client, maxTtlSeconds: '60' }, 'TypeError', /option maxTtlSeconds .*\(seconds\)/],
    [{ client, minTtlSeconds: 1.5 }, 'RangeError', /option minTtlSeconds/],
    [{ client, minTtlSeconds: 120, maxTtlSeconds: 60 }, 'RangeError', /minTtlSeconds must not exceed/],
    [
      { client, maxTtlSeconds: 2 ** 31 },
      'RangeError',
      /option maxTtlSeconds must be an integer from 1 to 2147483647/,
    ],
    [
      { client, minTtlSeconds: 1e14 },
      'RangeError',
      /option minTtlSeconds must be an integer from 1 to 2147483647/,
    ],
    [{ client, timeoutSeconds: 0 }, 'RangeError', /option timeoutSeconds must be a positive number/],
    [{ client, timeoutSeconds: 'soon' }, 'TypeError', /option timeoutSeconds .*got a string/],
    [{ client, timeoutSeconds: 3_000_000 }, 'RangeError', /option timeoutSeconds .* up to 2147483\.647/],
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

/** The index hash of a primary key, as RedisStore lays it out. */
function indexKey(prefix: string, key: string): string {
  return `${prefix}{${createHash('sha256').update(key).digest('hex').slice(0, 32)}}`
}

/** Polls `condition` every 10 ms until it holds; fails after `timeoutMs`. */
async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await sleep(10)
  }
}

describe('RedisStore against a real redis-server', { skip: skipReason ?? false }, () => {
  const clients: Redis[] = []
  /** A client of the test server, closed after the suite. */
  const connect = () => {
    const client = new Redis(redis().url)
    clients.push(client)
    return client
  }
  after(() => Promise.all(clients.map((client) => client.quit().catch(() => {}))))

  test('a store made from a url connects by itself and closes only its own client', async () => {
    const keyPrefix = freshPrefix('url')
    const store = new RedisStore({ url: redis().url, keyPrefix })
    assert.deepEqual(await store.get('k'), [], 'the first command waits for the connection')
    await storeBody(store, 'k', sampleMeta(), patternBody(100, 1))
    await store.close()
    await waitFor(() => store.client.status === 'end')
    const client = connect()
    const other = new RedisStore({ client, keyPrefix })
    assert.deepEqual(await readBody(entryAt(await other.get('k'))), patternBody(100, 1))
    await other.close()
    assert.equal(client.status, 'ready')
  })

  test('keys carry the prefix and expire with the entry; abort and delete leave no key behind', async () => {
    const keyPrefix = freshPrefix('keys')
    const client = connect()
    const limits = { chunkBytes: 1024, maxTtlSeconds: 3600, minTtlSeconds: 30 }
    const store = new RedisStore({ client, keyPrefix, ...limits })
    const nowMs = Date.now()
    await storeBody(store, 'large', sampleMeta({ deleteAtMs: nowMs + 300_000 }), patternBody(5000, 1))
    await storeBody(
      store,
      'validated',
      sampleMeta({ deleteAtMs: Number.MAX_SAFE_INTEGER }),
      patternBody(9, 2),
    )
    await storeBody(store, 'useless', sampleMeta({ deleteAtMs: nowMs - 1000 }), patternBody(9, 3))
    const large = indexKey(keyPrefix, 'large')
    const [largeBody] = await client.keys(`${large}:*`)
    assert.ok(largeBody)
    const expected = [large, largeBody, indexKey(keyPrefix, 'validated'), indexKey(keyPrefix, 'useless')]
    assert.deepEqual((await client.keys(`${keyPrefix}*`)).sort(), [...expected].sort())
    const ttls = await Promise.all(expected.map((key) => client.pttl(key)))
    const within = (ttl: number | undefined, maxMs: number) =>
      ttl !== undefined && ttl > maxMs - 5000 && ttl <= maxMs
    assert.ok(within(ttls[0], 300_000) && within(ttls[1], 300_000), `large: ${ttls}`)
    assert.ok(within(ttls[2], 3_600_000), `validated: ${ttls[2]}`)
    assert.ok(within(ttls[3], 30_000), `useless: ${ttls[3]}`)

    const writer = store.put('aborted', sampleMeta())
    await writer?.write(patternBody(3000, 4))
    const [pending] = await client.keys(`${indexKey(keyPrefix, 'aborted')}:*`)
    assert.ok(pending && within(await client.pttl(pending), PENDING_IDLE_TTL_MS))
    writer?.abort()
    await waitFor(async () => (await client.exists(pending)) === 0)
    const deleted = ['large', 'validated', 'useless']
    for (const key of deleted) await store.delete(key)
    const marks = deleted.map((key) => `${indexKey(keyPrefix, key)}:deleted`)
    assert.deepEqual(
      (await client.keys(`${keyPrefix}*`)).sort(),
      [largeBody, ...marks].sort(),
      'a deleted body waits out the grace period; each key marks its deletions',
    )
    const ttl = await client.pttl(largeBody)
    assert.ok(
      ttl > 0 && ttl <= REPLACED_BODY_GRACE_MS,
      `deleted body expires within the grace period: ${ttl}`,
    )
    for (const mark of marks) {
      assert.match(String(await client.get(mark)), /^[1-9]\d*$/, 'moved on by a random increment')
      assert.ok(within(await client.pttl(mark), DELETIONS_KEPT_MS), mark)
    }
  })

  test("a write looked up before another machine's delete of its key is not published (RFC 9111 §4.4)", async () => {
    const keyPrefix = freshPrefix('deleted-since')
    const watcher = connect()
    const [here, elsewhere] = [connect(), connect()].map(
      (client) => new RedisStore({ client, keyPrefix, chunkBytes: 1024 }),
    )
    assert.ok(here && elsewhere)
    const sentMs = Date.now()
    for (const body of [patternBody(9, 1), patternBody(5000, 2)]) {
      assert.deepEqual(await here.get('k'), [])
      await elsewhere.delete('k')
      await storeBody(here, 'k', sampleMeta({ requestTimeMs: sentMs }), body, 1024)
      assert.deepEqual(await elsewhere.get('k'), [], `a ${body.length}-byte body`)
    }
    assert.deepEqual(
      await watcher.keys(`${keyPrefix}*`),
      [`${indexKey(keyPrefix, 'k')}:deleted`],
      'no body or index left behind, only the count of deletions',
    )
    // a request sent in the millisecond of the loop's last lookup would be checked against that one
    await sleep(2)
    assert.deepEqual(await here.get('k'), [])
    await storeBody(here, 'k', sampleMeta({ requestTimeMs: Date.now() }), patternBody(9, 3))
    assert.equal((await elsewhere.get('k')).length, 1, 'looked up again after the delete: published')
    await storeBody(here, 'other', sampleMeta({ requestTimeMs: sentMs }), patternBody(9, 4))
    assert.equal((await elsewhere.get('other')).length, 1, 'a key never looked up is not held back')
    const firstSentMs = Date.now()
    await here.get('late')
    await elsewhere.delete('late')
    await sleep(2)
    await here.get('late')
    await storeBody(here, 'late', sampleMeta({ requestTimeMs: firstSentMs }), patternBody(9, 5))
    assert.deepEqual(await elsewhere.get('late'), [], "a later request's lookup does not hide the delete")
    await Promise.all([here.close(), elsewhere.close()])
  })

  test('a lookup sent right after a delete does not see what it removes, though Redis had forgotten the delete script', async () => {
    const keyPrefix = freshPrefix('delete-first')
    const admin = connect()
    const store = new RedisStore({ client: connect(), keyPrefix })
    await storeBody(store, 'k', sampleMeta(), patternBody(9, 1))
    await admin.script('FLUSH')
    assert.equal(
      (await store.get('k')).length,
      1,
      'the lookup script is loaded again; the delete script is not',
    )
    const deleting = store.delete('k')
    const found = await store.get('k')
    await deleting
    assert.deepEqual(found, [])
    await store.close()
  })

  test("a write sent after this store's own delete is published, though the key's last lookup came before it", async () => {
    const store = new RedisStore({ client: connect(), keyPrefix: freshPrefix('own-delete') })
    await store.get('k')
    await store.delete('k')
    await storeBody(store, 'k', sampleMeta({ requestTimeMs: Date.now() + 1 }), patternBody(9, 1))
    assert.equal((await store.get('k')).length, 1)
    await store.close()
  })

  test('a deletion mark that would overflow starts over', async () => {
    const keyPrefix = freshPrefix('overflow')
    const client = connect()
    const store = new RedisStore({ client, keyPrefix })
    const mark = `${indexKey(keyPrefix, 'k')}:deleted`
    await client.set(mark, '9223372036854775807')
    await store.delete('k')
    const moved = Number(await client.get(mark))
    assert.ok(moved >= 1 && moved < 2 ** 31, String(moved))
    await store.close()
  })

  test("a write looked up before another machine's delete stays out however many lookups came since; one looked up after is published", async () => {
    const keyPrefix = freshPrefix('pushed-out')
    const [here, elsewhere] = [connect(), connect()].map(
      (client) => new RedisStore({ client, keyPrefix, chunkBytes: 1024 }),
    )
    assert.ok(here && elsewhere)
    const sentMs = Date.now()
    await here.get('k')
    await elsewhere.delete('k')
    await sleep(2)
    // twenty more requests for the key start after the delete: their lookups see it
    for (let i = 0; i < 20; i++) await here.get('k')
    await storeBody(here, 'k', sampleMeta({ requestTimeMs: sentMs }), patternBody(9, 1))
    assert.deepEqual(await elsewhere.get('k'), [], 'its response may predate the delete')
    await sleep(2)
    const laterMs = Date.now()
    await here.get('k')
    await storeBody(here, 'k', sampleMeta({ requestTimeMs: laterMs }), patternBody(9, 2))
    assert.equal((await elsewhere.get('k')).length, 1, 'a request looked up after the delete: published')
    await Promise.all([here.close(), elsewhere.close()])
  })

  test('concurrent writers of one key never mix their bytes; the last commit wins', async () => {
    const keyPrefix = freshPrefix('writers')
    const [one, two] = [connect(), connect()].map(
      (client) => new RedisStore({ client, keyPrefix, chunkBytes: 1024 }),
    )
    assert.ok(one && two)
    const bodies = [patternBody(7000, 1), patternBody(7000, 2), patternBody(7000, 3)]
    const writers = [
      one.put('k', sampleMeta({ varyKey: 'a' })),
      two.put('k', sampleMeta({ varyKey: 'a' })),
      two.put('k', sampleMeta({ varyKey: 'b' })),
    ]
    for (let offset = 0; offset < 7000; offset += 700) {
      for (const [i, writer] of writers.entries()) {
        await writer?.write(Buffer.from((bodies[i] as Buffer).subarray(offset, offset + 700)))
      }
    }
    for (const i of [1, 2, 0]) await writers[i]?.commit()
    const entries = await two.get('k')
    assert.deepEqual(
      entries.map((entry) => entry.varyKey),
      ['a', 'b'],
    )
    assert.deepEqual(await readBody(entryAt(entries, 0)), bodies[0])
    assert.deepEqual(await readBody(entryAt(entries, 1)), bodies[2])
  })

  test('a variant whose body is gone is not served, and the next commit tidies it away', async () => {
    const keyPrefix = freshPrefix('gone')
    const client = connect()
    const store = new RedisStore({ client, keyPrefix, chunkBytes: 1024 })
    await storeBody(store, 'k', sampleMeta({ varyKey: 'large' }), patternBody(5000, 1))
    await storeBody(store, 'k', sampleMeta({ varyKey: 'small' }), patternBody(10, 2))
    const index = indexKey(keyPrefix, 'k')
    const [body] = await client.keys(`${index}:*`)
    await client.del(body as string)
    assert.deepEqual(
      (await store.get('k')).map((entry) => entry.varyKey),
      ['small'],
    )
    await storeBody(store, 'k', sampleMeta({ varyKey: 'other' }), patternBody(10, 3))
    assert.equal((await client.hkeys(index)).length, 1 + 3 * 2, 'n, and m: v: b: of two variants')
  })

  test('a body replaced while read is read to its end; it goes once the grace period is over', async () => {
    const keyPrefix = freshPrefix('replaced')
    const client = connect()
    const store = new RedisStore({ client, keyPrefix, chunkBytes: 1024 })
    await storeBody(store, 'k', sampleMeta(), patternBody(5000, 1))
    const [oldBody] = await client.keys(`${indexKey(keyPrefix, 'k')}:*`)
    const chunks = (entryAt(await store.get('k')).readBody() as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
    const read = [(await chunks.next()).value as Buffer]
    await storeBody(store, 'k', sampleMeta(), patternBody(5000, 2))
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) read.push(next.value)
    assert.deepEqual(Buffer.concat(read), patternBody(5000, 1))
    assert.deepEqual(await readBody(entryAt(await store.get('k'))), patternBody(5000, 2))
    const ttl = await client.pttl(oldBody as string)
    assert.ok(ttl > 0 && ttl <= REPLACED_BODY_GRACE_MS, `old body expires within the grace period: ${ttl}`)
  })

  test('a body evicted while written: the appends sent without waiting show the gap; commit rejects', async () => {
    const keyPrefix = freshPrefix('gap')
    const client = connect()
    const store = new RedisStore({ client, keyPrefix, chunkBytes: 1024 })
    const writer = store.put('k', sampleMeta())
    assert.ok(writer?.write(patternBody(1024, 1)) instanceof Promise, 'the first append waits for its answer')
    assert.equal(writer?.write(patternBody(1024, 2)), undefined, 'the next ones, within the window, do not')
    await waitFor(async () => (await client.keys(`${indexKey(keyPrefix, 'k')}:*`)).length === 1)
    const [body] = await client.keys(`${indexKey(keyPrefix, 'k')}:*`)
    await client.del(body as string)
    assert.equal(writer?.write(patternBody(1024, 3)), undefined)
    await assert.rejects(async () => writer?.commit(), /has a gap \(evicted while written\)/)
    assert.deepEqual(await store.get('k'), [])
    await waitFor(async () => (await client.keys(`${keyPrefix}*`)).length === 0)
  })

  test('a body deleted while read (an invalidation) is read to its end; the entry is gone at once', async () => {
    const keyPrefix = freshPrefix('deleted')
    const client = connect()
    const store = new RedisStore({ client, keyPrefix, chunkBytes: 1024 })
    await storeBody(store, 'k', sampleMeta(), patternBody(5000, 1))
    const chunks = (entryAt(await store.get('k')).readBody() as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
    const read = [(await chunks.next()).value as Buffer]
    await store.delete('k')
    assert.deepEqual(await store.get('k'), [])
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) read.push(next.value)
    assert.deepEqual(Buffer.concat(read), patternBody(5000, 1))
  })

  test('a body evicted while read makes the reader throw, never end short, and is reported', async () => {
    const keyPrefix = freshPrefix('read')
    const client = connect()
    const store = new RedisStore({ client, keyPrefix, chunkBytes: 1024 })
    // 40 chunks: more than a reader asks for ahead of its caller (16)
    await storeBody(store, 'k', sampleMeta(), patternBody(40 * 1024, 1))
    const chunks = (entryAt(await store.get('k')).readBody() as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
    assert.deepEqual((await chunks.next()).value, patternBody(40 * 1024, 1).subarray(0, 1024))
    const [body] = await client.keys(`${indexKey(keyPrefix, 'k')}:*`)
    await client.del(body as string)
    const reported: unknown[] = []
    const onError = (message: unknown) => reported.push(message)
    storeErrorChannel.subscribe(onError)
    try {
      const read = async () => {
        for (let next = await chunks.next(); !next.done; next = await chunks.next());
      }
      await assert.rejects(read(), /undici-cache: Redis body .* is gone \(evicted while read\)/)
    } finally {
      storeErrorChannel.unsubscribe(onError)
    }
    assert.deepEqual(
      reported.map((message) => (message as { store: unknown; operation: string }).operation),
      ['read'],
    )
    assert.equal((reported[0] as { store: unknown }).store, store)
  })

  test('under maxmemory with allkeys-lru, every entry read back is complete or absent', async () => {
    const admin = connect()
    await admin.config('SET', 'maxmemory-policy', 'allkeys-lru')
    await admin.config('SET', 'maxmemory', '3mb')
    try {
      const store = new RedisStore({ client: connect(), keyPrefix: freshPrefix('lru'), chunkBytes: 16_384 })
      let failedWrites = 0
      for (let i = 0; i < 60; i++) {
        await storeBody(store, `k${i}`, sampleMeta(), patternBody(100_000, i), 8192).catch(
          () => failedWrites++,
        )
      }
      let complete = 0
      for (let i = 0; i < 60; i++) {
        const [entry] = await store.get(`k${i}`)
        if (entry === undefined) continue
        const body = await readBody(entry).catch((error: Error) => error)
        if (body instanceof Error) assert.match(body.message, /is gone/)
        else assert.ok(body.equals(patternBody(100_000, i)), `k${i} is complete`)
        if (!(body instanceof Error)) complete++
      }
      const evicted = Number(/evicted_keys:(\d+)/.exec(await admin.info('stats'))?.[1])
      assert.ok(complete > 0 && complete < 60 && evicted > 0, `${complete} complete, ${evicted} evicted`)
      assert.ok(failedWrites < 60, `${failedWrites} writes failed`)
    } finally {
      await admin.config('SET', 'maxmemory', '0')
    }
  })
})
