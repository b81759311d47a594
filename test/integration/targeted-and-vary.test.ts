import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { makeAgent, send, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

let origin: Origin
before(async () => {
  origin = await startOrigin((req, res) => {
    const routes: Record<string, Record<string, string>> = {
      '/cdn-allows': { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=60' },
      '/cdn-forbids': { 'cache-control': 'max-age=60', 'cdn-cache-control': 'no-store' },
      '/custom-allows': { 'cache-control': 'no-store', 'my-cache-control': 'max-age=60' },
      '/cdn-private-field': {
        'cache-control': 'max-age=60',
        'cdn-cache-control': 'max-age=60, private="x-user", no-cache="x-token"',
        'x-user': 'alice',
        'x-token': 't1',
      },
      '/encodings': { 'cache-control': 'max-age=60', vary: 'Accept-Encoding, Accept-Language' },
      '/immutable': { 'cache-control': 'max-age=60, immutable', etag: '"i"' },
    }
    if (req.url === '/cdn-304-private-field' && req.headers['if-none-match'] === '"v1"') {
      const cdn = 'max-age=60, private="x-user"'
      return reply(res, 304, { etag: '"v1"', 'cdn-cache-control': cdn, 'x-user': 'bob' }, '')
    }
    if (req.url === '/cdn-304-private-field') {
      return reply(res, 200, { etag: '"v1"', 'cdn-cache-control': 'max-age=0' }, 'v1')
    }
    reply(res, 200, routes[req.url ?? ''] ?? {}, `for ${req.url} ${req.headers['accept-encoding'] ?? ''}`)
  })
})
after(() => origin.close())

async function originRequests(
  options: Parameters<typeof makeAgent>[1],
  path: string,
  headers: Record<string, string>[],
) {
  const cache = makeAgent(new MemoryStore(), options)
  const before = origin.count(path)
  for (const h of headers) await send(cache.agent, `${origin.url}${path}`, { headers: h })
  await cache.close()
  return origin.count(path) - before
}

describe('CDN-Cache-Control (RFC 9213), opt-in', () => {
  test('with cdnCacheControl: true the targeted field replaces Cache-Control', async () => {
    assert.equal(await originRequests({ cdnCacheControl: true }, '/cdn-allows', [{}, {}]), 1)
    assert.equal(await originRequests({ cdnCacheControl: true }, '/cdn-forbids', [{}, {}]), 2)
  })
  test('without the option it is ignored', async () => {
    assert.equal(await originRequests({}, '/cdn-allows', [{}, {}]), 2)
    assert.equal(await originRequests({}, '/cdn-forbids', [{}, {}]), 1)
  })
  test('fields named by private="…" and no-cache="…" in the targeted field are not stored (RFC 9213 §2.1)', async () => {
    const cache = makeAgent(new MemoryStore(), { cdnCacheControl: true })
    const url = `${origin.url}/cdn-private-field`
    const before = origin.count('/cdn-private-field')
    const first = await send(cache.agent, url)
    const second = await send(cache.agent, url)
    await cache.close()
    assert.equal(origin.count('/cdn-private-field') - before, 1)
    assert.equal(first.headers['x-user'], 'alice')
    assert.match(String(second.headers['cache-status']), /; hit/)
    assert.equal(second.headers['x-user'], undefined)
    assert.equal(second.headers['x-token'], undefined)
  })
  test('a field a 304 names in the targeted private="…" is not written back', async () => {
    const cache = makeAgent(new MemoryStore(), { cdnCacheControl: true })
    const url = `${origin.url}/cdn-304-private-field`
    const before = origin.count('/cdn-304-private-field')
    await send(cache.agent, url)
    const revalidated = await send(cache.agent, url)
    const hit = await send(cache.agent, url)
    await cache.close()
    assert.equal(origin.count('/cdn-304-private-field') - before, 2)
    assert.match(String(revalidated.headers['cache-status']), /fwd=stale; fwd-status=304/)
    assert.match(String(hit.headers['cache-status']), /; hit/)
    assert.equal(hit.body, 'v1')
    assert.equal(hit.headers['x-user'], undefined)
  })
  test('a custom targeted field name', async () => {
    assert.equal(await originRequests({ cdnCacheControl: 'My-Cache-Control' }, '/custom-allows', [{}, {}]), 1)
  })
})

describe('Vary normalisation', () => {
  test('Accept-Encoding and Accept-Language are compared by their members, case-folded', async () => {
    const variants = [
      { 'accept-encoding': 'gzip, br', 'accept-language': 'en-US, fr;q=0.5' },
      { 'accept-encoding': 'BR,gzip', 'accept-language': 'EN-us,  fr ; q=0.5' },
      { 'accept-encoding': ' gzip ,  br ', 'accept-language': 'en-us,fr;q=0.5' },
    ]
    assert.equal(await originRequests({}, '/encodings', variants), 1)
    assert.equal(
      await originRequests({}, '/encodings', [variants[0] ?? {}, { 'accept-encoding': 'gzip' }]),
      2,
    )
  })
  test('Accept-Language order is kept: origins may break q-value ties by order (RFC 9110 §12.5.4)', async () => {
    const variants = [{ 'accept-language': 'de, fr' }, { 'accept-language': 'fr, de' }]
    assert.equal(await originRequests({}, '/encodings', variants), 2)
  })
})

describe('immutable (RFC 8246)', () => {
  test('a reload (request max-age=0) does not revalidate a fresh immutable response; no-cache does', async () => {
    assert.equal(await originRequests({}, '/immutable', [{}, { 'cache-control': 'max-age=0' }]), 1)
    assert.equal(await originRequests({}, '/immutable', [{}, { 'cache-control': 'no-cache' }]), 2)
  })
})

for (const kind of storeKinds) {
  test(`a malformed Vary is not stored: one user's page never reaches another, alone or collapsed (${kind.name})`, async () => {
    const accounts = await startOrigin((req, res) => {
      setTimeout(() => {
        const headers = { 'cache-control': 'max-age=60', vary: 'Cookie Accept-Language' }
        reply(res, 200, headers, `account page of ${req.headers.cookie}`)
      }, 50)
    })
    const cache = makeAgent(kind.make())
    try {
      const url = `${accounts.url}/me`
      const alice = await send(cache.agent, url, { headers: { cookie: 'sid=alice' } })
      assert.equal(alice.headers['cache-status'], 'undici-cache; fwd=miss; detail=malformed-vary')
      const bob = await send(cache.agent, url, { headers: { cookie: 'sid=bob' } })
      assert.equal(bob.body, 'account page of sid=bob')
      const users = ['carol', 'dave', 'erin']
      const together = await Promise.all(
        users.map((user) => send(cache.agent, url, { headers: { cookie: `sid=${user}` } })),
      )
      assert.deepEqual(
        together.map((reply) => reply.body),
        users.map((user) => `account page of sid=${user}`),
      )
      assert.equal(accounts.count('/me'), 5)
    } finally {
      await cache.close()
      await accounts.close()
    }
  })
}
