/**
 * toUndiciStore on its own: the undici values it keeps and which one it picks (method, Vary, deleteAt),
 * bodies missing or of another length, and failing stores that never fail a request.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { after, before, test } from 'node:test'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { CacheStore } from '../../lib/stores/store.js'
import { toUndiciStore, UNDICI_VALUE_HEADER } from '../../lib/stores/undici-store-adapter.js'
import { send, sleep, tempDir } from '../helpers/client.js'
import { sampleMeta, storeBody } from './helpers.js'
import { LARGE_BODY, origin, startAdapterOrigin, undiciCache, writeValue } from './undici-adapter-setup.js'

before(() => startAdapterOrigin())
after(() => origin.close())

/** A 200 with no fields, cached now, stale and deleted that many ms from now, as undici's interceptor writes it. */
function plainValue(staleAfterMs: number, deleteAfterMs: number) {
  const nowMs = Date.now()
  const times = { cachedAt: nowMs, staleAt: nowMs + staleAfterMs, deleteAt: nowMs + deleteAfterMs }
  return { statusCode: 200, statusMessage: 'OK', headers: {}, ...times }
}

test('a body file gone when undici looks the entry up makes a miss, not a failed request', async () => {
  const file = path.join(tempDir(), 'cache.db')
  const cache = undiciCache(new SqliteStore({ path: file, chunkBytes: 1024 }))
  const target = '/large?suite=gone'
  await cache.sendAndSettle(target)
  for (const name of fs.readdirSync(`${file}-bodies`)) fs.rmSync(path.join(`${file}-bodies`, name))
  const again = await send(cache.dispatcher, origin.url + target)
  assert.deepEqual([again.status, again.body], [200, LARGE_BODY])
  assert.equal(origin.count(target), 2)
  await cache.close()
})

test('the adapter keeps undici values intact and picks by method, Vary and deleteAt', async () => {
  const store = new MemoryStore()
  const adapter = toUndiciStore(store)
  const key = { origin: 'http://127.0.0.1:1', method: 'GET', path: '/x', headers: { accept: 'text/html' } }
  const nowMs = Date.now()
  const value = {
    statusCode: 200,
    statusMessage: 'OK',
    headers: { 'content-type': 'text/html', 'content-length': '5', [UNDICI_VALUE_HEADER]: 'forged' },
    vary: { accept: 'text/html', 'accept-language': null },
    etag: '"e"',
    cacheControlDirectives: { 'max-age': 60 },
    cachedAt: nowMs,
    staleAt: nowMs + 60_000,
    deleteAt: nowMs + 120_000,
  }
  await writeValue(adapter, key, value, 'hello')
  const { body, ...found } = (await adapter.get(key)) ?? {}
  assert.deepEqual(found, { ...value, headers: { 'content-type': 'text/html', 'content-length': '5' } })
  assert.deepEqual(body, [Buffer.from('hello')])
  assert.equal(await adapter.get({ ...key, method: 'HEAD' }), undefined)
  assert.equal(await adapter.get({ ...key, headers: { accept: 'text/plain' } }), undefined)
  assert.equal(
    await adapter.get({ ...key, headers: { accept: 'text/html', 'accept-language': 'en' } }),
    undefined,
  )
  await writeValue(adapter, key, { ...value, deleteAt: nowMs - 1 }, 'stale')
  assert.equal(await adapter.get(key), undefined, 'past deleteAt')
  // undici drops a body it is handed for an entry past deleteAt as it looks, without closing it
  await writeValue(adapter, key, { ...value, deleteAt: Date.now() + 50 }, 'nearly')
  assert.equal(await adapter.get(key), undefined, 'within 100 ms of deleteAt')
  await writeValue(adapter, key, { ...value, deleteAt: Date.now() + 1000 }, 'short')
  assert.ok(await adapter.get(key), 'a second from deleteAt')
  await adapter.delete(key)
  await storeBody(
    store,
    `undici ${key.origin}${key.path}`,
    sampleMeta({ headers: { [UNDICI_VALUE_HEADER]: '{' } }),
    Buffer.from('x'),
  )
  await storeBody(store, `undici ${key.origin}${key.path}`, sampleMeta({ varyKey: 'own' }), Buffer.from('x'))
  assert.equal(await adapter.get(key), undefined, 'entries without a readable undici value are never served')
})

test('a body of another length than its entry says makes a miss (read whole, up to 1 MiB) or fails its stream: never short or long', async () => {
  for (const [name, cut] of [
    ['short', (body: Buffer) => body.subarray(0, body.length - 100)],
    ['long', (body: Buffer) => Buffer.concat([body, Buffer.alloc(100)])],
  ] as const) {
    const memory = new MemoryStore({ maxEntryBytes: 4 * 1024 * 1024 })
    const lying: CacheStore = {
      get: (key) =>
        memory.get(key).map((entry) => {
          const body = cut(entry.body ?? Buffer.alloc(0))
          return { ...entry, body: undefined, readBody: () => [body] }
        }),
      put: (key, meta, sizeBytes) => memory.put(key, meta, sizeBytes),
      update: (key, id, meta) => memory.update(key, id, meta),
      delete: (key) => memory.delete(key),
      close: () => memory.close(),
    }
    const cache = undiciCache(lying)
    const target = `/lying-${name}`
    await send(cache.dispatcher, origin.url + target)
    await sleep(50)
    const again = await send(cache.dispatcher, origin.url + target)
    assert.equal(again.body, `GET ${target}`, name)
    assert.equal(origin.count(target), 2, `${name}: a miss`)
    // over 1 MiB, read as served: the stream fails
    const adapter = toUndiciStore(lying)
    const key = { origin: origin.url, method: 'GET', path: `/lying-big-${name}` }
    await writeValue(adapter, key, plainValue(60_000, 60_000), 'b'.repeat(2 * 1024 * 1024))
    const found = await adapter.get(key)
    assert.ok(found?.body instanceof Readable, name)
    await assert.rejects(found.body.toArray(), /the stored body of \d+ bytes read/)
    await cache.close()
  }
})

test('the newest matching entry, within 100 ms of its deleteAt, makes a miss: an older match is not served instead', async () => {
  const adapter = toUndiciStore(new MemoryStore())
  const key = { origin: 'http://127.0.0.1:1', method: 'GET', path: '/newest', headers: { accept: 'a' } }
  const value = plainValue(1, 3_600_000)
  await writeValue(adapter, key, value, 'older')
  await writeValue(adapter, key, { ...value, vary: { accept: 'a' }, deleteAt: Date.now() + 50 }, 'newer')
  assert.equal(await adapter.get(key), undefined)
})

test('a failing store never fails a request through the adapter', async () => {
  const failing: CacheStore = {
    get: async () => Promise.reject(new Error('get failed')),
    put: () => ({
      write: () => {
        throw new Error('write failed')
      },
      commit: () => {},
      abort: () => {},
    }),
    update: () => {},
    delete: async () => Promise.reject(new Error('delete failed')),
    close: () => {},
  }
  const cache = undiciCache(failing)
  const target = '/failing'
  for (const method of ['GET', 'GET', 'POST', 'GET']) {
    const response = await send(cache.dispatcher, origin.url + target, { method })
    assert.deepEqual([response.status, response.body], [200, `${method} ${target}`])
  }
  assert.equal(origin.count(target), 4)
  const throwing = toUndiciStore({ ...failing, put: () => assert.fail('put failed') })
  const value = { statusCode: 200, statusMessage: 'OK', headers: {}, cachedAt: 1, staleAt: 2, deleteAt: 3 }
  const key = { origin: origin.url, method: 'GET', path: '/' }
  assert.equal(throwing.createWriteStream(key, value), undefined)
  const commitFails = toUndiciStore({
    ...failing,
    put: () => ({
      write: async () => {},
      commit: async () => Promise.reject(new Error('commit failed')),
      abort: () => {},
    }),
  })
  await assert.rejects(writeValue(commitFails, key, value, 'body'), /commit failed/)
  await cache.close()
})

test('a committed write is not aborted after (Node destroys a finished Writable): a store whose abort drops what was written keeps it', async () => {
  const inner = new MemoryStore()
  const events: string[] = []
  // a store true to the contract's word: abort() drops everything written, also after a commit
  const strict: CacheStore = {
    get: (key) => inner.get(key),
    put: (key, meta, expectedSizeBytes) => {
      const writer = inner.put(key, meta, expectedSizeBytes)
      if (!writer) return undefined
      return {
        write: (chunk) => writer.write(chunk),
        commit: () => {
          events.push('commit')
          return writer.commit()
        },
        abort: () => {
          events.push('abort')
          inner.delete(key)
        },
      }
    },
    update: (key, id, meta) => inner.update(key, id, meta),
    delete: (key) => inner.delete(key),
    close: () => inner.close(),
  }
  const cache = undiciCache(strict)
  const target = '/large?suite=strict-abort'
  await cache.sendAndSettle(target)
  const again = await send(cache.dispatcher, origin.url + target)
  assert.deepEqual([again.status, again.body], [200, LARGE_BODY])
  assert.equal(origin.count(target), 1)
  assert.deepEqual(events, ['commit'])
  await cache.close()
})
