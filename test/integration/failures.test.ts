import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import Database from 'better-sqlite3'
import fc from 'fast-check'
import { request, fetch as undiciFetch } from 'undici'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { CacheStore } from '../../lib/stores/store.js'
import { AsyncStore } from '../helpers/async-store.js'
import { makeAgent, send, storeKinds, tempDir } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'
import { sampleMeta } from '../stores/helpers.js'

let origin: Origin
let garbage: Record<string, string> = {}
let acrossVersion = 1

before(async () => {
  origin = await startOrigin((req, res) => {
    if (req.url === '/garbage') return reply(res, 200, garbage, 'garbage body')
    if (req.url?.startsWith('/slow')) {
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(1024 * 1024) })
      res.write(Buffer.alloc(64 * 1024, 1))
      return // never finishes: the client aborts
    }
    if (req.url === '/across-write') {
      if (req.method === 'POST') return reply(res, 200, {}, `written v${++acrossVersion}`)
      // the origin decides when the request arrives and answers a little later
      const etag = `"v${acrossVersion}"`
      if (req.headers['if-none-match'] === etag)
        return setTimeout(() => reply(res, 304, { etag, 'cache-control': 'max-age=60' }), 150)
      return reply(res, 200, { etag, 'cache-control': 'max-age=1' }, `across v${acrossVersion}`)
    }
    if (req.url?.startsWith('/rows-')) {
      // four pieces apart: stored as two chunk rows of 2 000 bytes
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '4000' })
      const write = (left: number): unknown =>
        left === 0 ? res.end() : res.write('r'.repeat(1000), () => setTimeout(write, 10, left - 1))
      return write(4)
    }
    reply(res, 200, { 'cache-control': 'max-age=60' }, `ok ${req.url}`)
  })
})
after(() => origin.close())

for (const kind of storeKinds) {
  describe(`failures (${kind.name})`, () => {
    test('an aborted download leaves no entry behind', async () => {
      const cache = makeAgent(kind.make())
      const controller = new AbortController()
      const res = await request(`${origin.url}/slow`, { dispatcher: cache.agent, signal: controller.signal })
      assert.equal(res.headers['cache-status'], 'undici-cache; fwd=miss; stored')
      await assert.rejects(async () => {
        for await (const _chunk of res.body) controller.abort()
      }, /aborted/i)
      await new Promise((resolve) => setTimeout(resolve, 50))
      assert.deepEqual(await cache.store.get(`${origin.url}/slow`), [])
      await cache.close()
    })

    test('malformed caching headers from the origin never throw (property)', async () => {
      const cache = makeAgent(kind.make())
      const value = fc.stringMatching(/^[\x21-\x7e][\x20-\x7e]{0,40}$/)
      const names = ['cache-control', 'expires', 'date', 'age', 'vary', 'etag', 'last-modified', 'pragma']
      await fc.assert(
        fc.asyncProperty(fc.dictionary(fc.constantFrom(...names), value), async (headers) => {
          garbage = headers
          for (let i = 0; i < 2; i++) {
            const result = await send(cache.agent, `${origin.url}/garbage`)
            assert.equal(result.status, 200)
            assert.equal(result.body, 'garbage body')
          }
        }),
        { numRuns: 60 },
      )
      await cache.close()
    })
  })
}

test('a failing store degrades to passing requests through, with a warning', async () => {
  const store = new SqliteStore({ path: path.join(tempDir(), 'closed.db') })
  const cache = makeAgent(store)
  store.close()
  const warnings: string[] = []
  process.on('warning', (warning) => warnings.push(warning.message))
  const before = origin.count('/through')
  const first = await send(cache.agent, `${origin.url}/through`)
  const second = await send(cache.agent, `${origin.url}/through`)
  assert.equal(first.body, 'ok /through')
  assert.equal(second.body, 'ok /through')
  assert.equal(second.headers['cache-status'], 'undici-cache; fwd=miss; detail=store-error')
  assert.equal(origin.count('/through') - before, 2)
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(warnings.filter((w) => w.includes('undici-cache: store get failed')).length, 1)
  await cache.agent.close()
})

test('only-if-cached is answered 504 when the store fails, never by the origin (RFC 9111 §5.2.1.7)', async () => {
  const closed = new SqliteStore({ path: path.join(tempDir(), 'closed-oic.db') })
  closed.close()
  // the lookup throws (SqliteStore), or rejects on a later turn (an asynchronous store)
  for (const store of [closed, new AsyncStore(closed)]) {
    const cache = makeAgent(store)
    const before = origin.count('/only-cached')
    const byHeader = await send(cache.agent, `${origin.url}/only-cached`, {
      headers: { 'cache-control': 'only-if-cached' },
    })
    const byOption = await send(cache.agent, `${origin.url}/only-cached`, { cache: { onlyIfCached: true } })
    for (const res of [byHeader, byOption]) {
      assert.equal(res.status, 504)
      assert.equal(res.headers['cache-status'], 'undici-cache; detail=only-if-cached')
    }
    assert.equal(origin.count('/only-cached'), before)
    await cache.agent.close()
  }
})

/** A MemoryStore whose get() gives `answer` instead of a list, at once or as a promise's value. */
class NoList extends MemoryStore {
  readonly #answer: () => unknown

  constructor(answer: () => unknown) {
    super()
    this.#answer = answer
  }

  override get(): never {
    return this.#answer() as never
  }
}

test('a store whose get() gives no list of entries (undefined, null, [null], an entry without a length...) is a failing store', async () => {
  const readBody = () => [Buffer.from('stored')]
  const entry = { ...sampleMeta(), id: 1, readBody }
  const answers = [
    () => undefined,
    () => null,
    () => Promise.resolve(undefined),
    () => Promise.resolve({}),
    () => [null],
    () => Promise.resolve([undefined]),
    () => [{ ...entry, sizeBytes: Number.NaN }],
    () => [{ ...entry, sizeBytes: undefined }],
    () => Promise.resolve([{ ...entry, sizeBytes: -1 }]),
    () => [{ ...entry, sizeBytes: 6, readBody: undefined }],
    () => [{ ...entry, sizeBytes: 6, body: 'stored' }],
  ]
  for (const answer of answers) {
    const cache = makeAgent(new NoList(answer))
    const before = origin.count('/no-list')
    const res = await send(cache.agent, `${origin.url}/no-list`)
    assert.equal(res.body, 'ok /no-list')
    assert.equal(res.headers['cache-status'], 'undici-cache; fwd=miss; detail=store-error')
    assert.equal(origin.count('/no-list'), before + 1)
    await cache.agent.close()
  }
})

/** A real MemoryStore whose deletes fail while `failing` is set, as a locked or full disk's would. */
class FailingDeletes extends MemoryStore {
  failing = true

  override delete(key: string): void {
    if (this.failing) throw new Error('database is locked')
    super.delete(key)
  }
}

test('an invalidation the store fails to write still keeps the old entry from being served', async () => {
  const store = new FailingDeletes()
  for (const [name, inner] of [
    ['sync', store],
    ['async', new AsyncStore(store)],
  ] as const) {
    store.failing = true
    const cache = makeAgent(inner)
    const url = `${origin.url}/invalidated-${name}`
    const path = `/invalidated-${name}`
    await send(cache.agent, url)
    assert.match(String((await send(cache.agent, url)).headers['cache-status']), /^undici-cache; hit/)
    assert.equal((await send(cache.agent, url, { method: 'POST' })).status, 200)
    // entries are told apart by their response time in ms: one stored in the write's millisecond counts as older
    await new Promise((resolve) => setTimeout(resolve, 2))
    const afterWrite = await send(cache.agent, url)
    assert.equal(afterWrite.headers['cache-status'], 'undici-cache; fwd=miss; stored', name)
    assert.equal(origin.count(path), 3)
    assert.match(String((await send(cache.agent, url)).headers['cache-status']), /^undici-cache; hit/)
    assert.equal(origin.count(path), 3, 'the response stored after the write is served')
    await cache.agent.close()
  }
})

test('once the store deletes again, the key is forgotten and the old entry removed', async () => {
  const store = new FailingDeletes()
  const cache = makeAgent(store)
  const url = `${origin.url}/invalidated-later`
  await send(cache.agent, url)
  await send(cache.agent, url, { method: 'POST' })
  store.failing = false
  assert.equal((await send(cache.agent, url)).headers['cache-status'], 'undici-cache; fwd=miss; stored')
  assert.match(String((await send(cache.agent, url)).headers['cache-status']), /^undici-cache; hit/)
  assert.equal(origin.count('/invalidated-later'), 3)
  await cache.agent.close()
})

test('a 304 to a revalidation sent before an invalidation the store failed to write does not revive the entry', async () => {
  const store = new FailingDeletes()
  const cache = makeAgent(store)
  const url = `${origin.url}/across-write`
  assert.equal((await send(cache.agent, url)).body, 'across v1')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const revalidating = send(cache.agent, url)
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal((await send(cache.agent, url, { method: 'POST' })).body, 'written v2')
  const concurrent = await revalidating
  assert.equal(concurrent.body, 'across v1', 'a request concurrent with the write may see either')
  const after = await send(cache.agent, url)
  assert.equal(after.body, 'across v2')
  assert.equal(after.headers['cache-status'], 'undici-cache; fwd=miss; stored')
  await cache.agent.close()
})

test('a hit whose chunk row is gone fails fetch() and the global fetch() with the error, never a body left hanging', async () => {
  const dbPath = path.join(tempDir(), 'rows.db')
  const store = new SqliteStore({ path: dbPath, bodyFiles: false, chunkBytes: 1024, hotBytes: 0 })
  const cache = makeAgent(store)
  const fetches = [undiciFetch, globalThis.fetch as unknown as typeof undiciFetch]
  for (const [index, fetchOf] of fetches.entries()) {
    const url = `${origin.url}/rows-${index}`
    await send(cache.agent, url)
    store.stats() // commits the queue
    const db = new Database(dbPath)
    assert.equal(db.prepare('DELETE FROM chunks WHERE seq = 1').run().changes, 1)
    db.close()
    const response = await fetchOf(url, { dispatcher: cache.agent })
    assert.match(String(response.headers.get('cache-status')), /^undici-cache; hit/)
    // the error comes in the turn the response started: undici's fetch() lost it, and the body never ended
    const read = response.text().then(
      () => 'ended',
      (error: Error) => String((error.cause as Error | undefined)?.message),
    )
    const outcome = await Promise.race([read, new Promise((resolve) => setTimeout(resolve, 3000, 'hung'))])
    assert.match(String(outcome), /chunk 1 of entry \d+ is missing/)
  }
  await cache.close()
})

test('a caller that aborts before a failed read reaches it gets its abort, not the read error', async () => {
  const memory = new MemoryStore()
  const failingRead: CacheStore = {
    get: (key) =>
      memory.get(key).map((entry) => ({
        ...entry,
        body: undefined,
        *readBody() {
          yield Buffer.from('first')
          throw new Error('read failed')
        },
      })),
    put: (key, meta, sizeBytes) => memory.put(key, meta, sizeBytes),
    update: (key, id, meta) => memory.update(key, id, meta),
    delete: (key) => memory.delete(key),
    close: () => memory.close(),
  }
  const cache = makeAgent(failingRead)
  const url = `${origin.url}/aborted-failing-read`
  await send(cache.agent, url)
  const unaborted = await request(url, { dispatcher: cache.agent })
  await assert.rejects(unaborted.body.text(), /read failed/)
  // aborted after the read failed, in the same turn: before the failure is handed on
  const ended = new Promise<Error>((resolve) => {
    cache.agent.dispatch(
      { origin: origin.url, path: '/aborted-failing-read', method: 'GET' },
      {
        onRequestStart: () => {},
        onResponseStart: (controller) => queueMicrotask(() => controller.abort(new Error('mine'))),
        onResponseError: (_controller, error) => resolve(error),
      },
    )
  })
  assert.equal((await ended).message, 'mine')
  await cache.close()
})
