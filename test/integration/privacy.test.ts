import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { makeAgent, send, storeKinds, tempDir } from '../helpers/client.js'
import { type Origin, reply, startOrigin, twoMinutesAgo } from '../helpers/origin.js'

const routes: Record<string, Record<string, string>> = {
  '/no-store': { 'cache-control': 'no-store, max-age=60' },
  '/private': { 'cache-control': 'private, max-age=60' },
  '/private-field': { 'cache-control': 'max-age=60, private="x-user"', 'x-user': 'alice' },
  '/auth': { 'cache-control': 'max-age=60' },
  '/auth-public': { 'cache-control': 'public, max-age=60' },
  '/auth-s-maxage': { 'cache-control': 's-maxage=60' },
  '/auth-must-revalidate': { 'cache-control': 'max-age=60, must-revalidate' },
  '/cookie': { 'cache-control': 'max-age=60', 'set-cookie': 'session=secret' },
  '/no-cache-field': { 'cache-control': 'max-age=60, no-cache="x-token"', 'x-token': 't1' },
  '/semicolons': {
    'cache-control': 'private; max-age=600',
    'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT',
  },
}

/** How many origin requests two identical requests cause, in the given mode. */
async function twice(shared: boolean, path: string, headers?: Record<string, string>) {
  const cache = makeAgent(new MemoryStore(), { shared })
  try {
    const first = await send(cache.agent, `${origin.url}${path}`, { headers })
    const second = await send(cache.agent, `${origin.url}${path}`, { headers })
    return { first, second, originRequests: origin.count(path) - (counts.get(path) ?? 0) }
  } finally {
    counts.set(path, origin.count(path))
    await cache.close()
  }
}

let origin: Origin
const counts = new Map<string, number>()

before(async () => {
  origin = await startOrigin((req, res) => reply(res, 200, routes[req.url ?? ''] ?? {}, `for ${req.url}`))
})
after(() => origin.close())

describe('what a shared cache (the default) never stores', () => {
  test('no-store', async () => {
    const { second, originRequests } = await twice(true, '/no-store')
    assert.equal(originRequests, 2)
    assert.equal(second.headers['cache-status'], 'undici-cache; fwd=miss; detail=no-store')
  })
  test('private', async () => {
    const { second, originRequests } = await twice(true, '/private')
    assert.equal(originRequests, 2)
    assert.match(String(second.headers['cache-status']), /detail=private$/)
  })
  test('a response to a request with Authorization (RFC 9111 §3.5)', async () => {
    const { originRequests } = await twice(true, '/auth', { authorization: 'Bearer alice' })
    assert.equal(originRequests, 2)
  })
  test('a malformed Cache-Control, which may hide private or no-store (`private; max-age=600`)', async () => {
    const { second, originRequests } = await twice(true, '/semicolons', { cookie: 'user=alice' })
    assert.equal(originRequests, 2)
    assert.equal(second.headers['cache-status'], 'undici-cache; fwd=miss; detail=malformed-cache-control')
  })
  test('Set-Cookie responses', async () => {
    const { second, originRequests } = await twice(true, '/cookie')
    assert.equal(originRequests, 2)
    assert.equal(second.headers['set-cookie'], 'session=secret')
  })
})

describe('what a shared cache may store', () => {
  for (const path of ['/auth-public', '/auth-s-maxage', '/auth-must-revalidate']) {
    test(`Authorization with ${routes[path]?.['cache-control']}`, async () => {
      const { second, originRequests } = await twice(true, path, { authorization: 'Bearer alice' })
      assert.equal(originRequests, 1)
      assert.match(String(second.headers['cache-status']), /^undici-cache; hit/)
    })
  }
  test('private="x-user" stores the response without the named field', async () => {
    const { first, second, originRequests } = await twice(true, '/private-field')
    assert.equal(originRequests, 1)
    assert.equal(first.headers['x-user'], 'alice')
    assert.equal(second.headers['x-user'], undefined)
    assert.equal(second.body, 'for /private-field')
  })
  test('no-cache="x-token" stores the response without the named field', async () => {
    const { second, originRequests } = await twice(true, '/no-cache-field')
    assert.equal(originRequests, 1)
    assert.equal(second.headers['x-token'], undefined)
  })
})

describe('a private cache (shared: false)', () => {
  test('stores private responses, Authorization responses and Set-Cookie', async () => {
    assert.equal((await twice(false, '/private')).originRequests, 1)
    assert.equal((await twice(false, '/auth', { authorization: 'Bearer alice' })).originRequests, 1)
    const cookie = await twice(false, '/cookie')
    assert.equal(cookie.originRequests, 1)
    assert.equal(cookie.second.headers['set-cookie'], 'session=secret')
  })
  test('still never stores no-store', async () => {
    assert.equal((await twice(false, '/no-store')).originRequests, 2)
  })
  test('keeps fields named by private="..."', async () => {
    const { second } = await twice(false, '/private-field')
    assert.equal(second.headers['x-user'], 'alice')
  })
})

describe('a shared cache on the store a private cache writes to', () => {
  const cases: [string, Record<string, string>?][] = [
    ['/private'],
    ['/auth', { authorization: 'Bearer alice' }],
    ['/cookie'],
    ['/private-field'],
  ]
  for (const [name, make] of [
    [
      'one MemoryStore',
      () => {
        const store = new MemoryStore()
        return [store, store] as const
      },
    ],
    [
      'two SqliteStores on one file',
      () => {
        const file = join(tempDir(), 'shared.db')
        return [new SqliteStore({ path: file }), new SqliteStore({ path: file })] as const
      },
    ],
  ] as const) {
    test(`never uses what the private cache stored (${name})`, async () => {
      const [aliceStore, bobStore] = make()
      const alice = new CacheAgent({ store: aliceStore, shared: false })
      const bob = new CacheAgent({ store: bobStore })
      try {
        for (const [path, headers] of cases) {
          const before = origin.count(path)
          await send(alice, `${origin.url}${path}`, { headers })
          assert.match(
            String((await send(alice, `${origin.url}${path}`, { headers })).headers['cache-status']),
            /hit/,
          )
          const bobs = await send(bob, `${origin.url}${path}`)
          assert.match(String(bobs.headers['cache-status']), /^undici-cache; fwd=miss/, path)
          assert.equal(bobs.headers['set-cookie'], path === '/cookie' ? 'session=secret' : undefined)
          assert.equal(origin.count(path) - before, 2, path)
        }
      } finally {
        await alice.close()
        await bob.close()
        await aliceStore.close()
        if (bobStore !== aliceStore) await bobStore.close()
      }
    })
  }
  test('a HEAD through the shared cache does not freshen what the private cache stored', async () => {
    const store = new MemoryStore()
    const alice = new CacheAgent({ store, shared: false })
    const bob = new CacheAgent({ store })
    try {
      await send(alice, `${origin.url}/private`)
      await send(bob, `${origin.url}/private`, { method: 'HEAD' })
      const [entry] = await store.get(`${origin.url}/private`)
      assert.equal(entry?.sharedCache, undefined)
    } finally {
      await alice.close()
      await bob.close()
    }
  })
})

for (const kind of storeKinds) {
  describe(`a shared cache never hands one request's fields to the requests that waited on it (${kind.name})`, () => {
    let personal: Origin
    let cache: ReturnType<typeof makeAgent>
    before(async () => {
      personal = await startOrigin((req, res, seen) => {
        const n = personal.count(seen.url) // this path's requests so far, this one included
        if (req.url === '/account') {
          const headers = {
            'cache-control': 'max-age=60, private="x-user-token"',
            'x-user-token': `token ${n}`,
          }
          res.writeHead(200, headers)
          res.write('account ')
          setTimeout(() => res.end('page'), 100)
          return
        }
        // stale on arrival, revalidated for several requests at once (see twoMinutesAgo)
        const validators = { 'cache-control': 'max-age=60', etag: '"p1"' }
        if (req.headers['if-none-match'] !== '"p1"')
          return reply(res, 200, { ...validators, date: twoMinutesAgo() }, 'page')
        setTimeout(() => reply(res, 304, { ...validators, 'set-cookie': `session=${n}` }), 100)
      })
      cache = makeAgent(kind.make())
    })
    after(async () => {
      await cache.close()
      await personal.close()
    })
    const three = (path: string) =>
      Promise.all([1, 2, 3].map(() => send(cache.agent, `${personal.url}${path}`)))

    test('private="x-user-token": only the first caller sees it, not the requests fed its response', async () => {
      const replies = await three('/account')
      assert.equal(personal.count('/account'), 1)
      assert.deepEqual(
        replies.map((reply) => [reply.body, reply.headers['x-user-token']]),
        [
          ['account page', 'token 1'],
          ['account page', undefined],
          ['account page', undefined],
        ],
      )
      assert.equal(replies[2]?.headers['cache-status'], 'undici-cache; fwd=miss; collapsed')
    })

    test("a 304's Set-Cookie goes only to the request that revalidated, not to those waiting on it", async () => {
      await send(cache.agent, `${personal.url}/page`)
      const replies = await three('/page')
      assert.equal(personal.count('/page'), 2)
      assert.deepEqual(
        replies.map((reply) => [reply.body, reply.headers['set-cookie']]),
        [
          ['page', 'session=2'],
          ['page', undefined],
          ['page', undefined],
        ],
      )
      assert.equal(replies[2]?.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304; collapsed')
    })
  })
}
