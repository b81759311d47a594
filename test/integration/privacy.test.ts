import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { makeAgent, send } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

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
