import assert from 'node:assert/strict'
import path from 'node:path'
import { test } from 'node:test'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { CacheStore } from '../../lib/stores/store.js'
import { send, tempDir } from '../helpers/client.js'
import { reply, startOrigin } from '../helpers/origin.js'

/**
 * RFC 9111 §4.3.4 siblings: every 200 is stale at once (max-age=0, one strong ETag for all languages);
 * a matching 304 makes a response fresh for 60 s, with `x-pad` bytes of padding and, to a request with
 * a Cookie, a Set-Cookie.
 */
async function siblingOrigin(padBytes = 0) {
  return startOrigin((req, res) => {
    const language = String(req.headers['accept-language'] ?? 'none')
    const etag = '"same"'
    const vary = 'Accept-Language'
    if (req.headers['if-none-match'] === etag) {
      const headers: Record<string, string> = { etag, vary, 'cache-control': 'max-age=60' }
      if (padBytes > 0) headers['x-pad'] = 'p'.repeat(padBytes)
      if (req.headers.cookie) headers['set-cookie'] = 'sid=alice'
      return reply(res, 304, headers)
    }
    reply(res, 200, { etag, vary, 'cache-control': 'max-age=0' }, language.repeat(500))
  })
}

const conditionalGets = (origin: Awaited<ReturnType<typeof siblingOrigin>>) =>
  origin.requests.filter((seen) => seen.headers['if-none-match'] !== undefined).length

test('near maxBytes, freshening a sibling never costs the revalidated request its 304', async () => {
  const stores: [string, () => CacheStore][] = [
    ['MemoryStore', () => new MemoryStore({ maxBytes: 3000 })],
    ['SqliteStore', () => new SqliteStore({ path: path.join(tempDir(), 'c.db'), maxBytes: 3000 })],
  ]
  for (const [name, make] of stores) {
    const origin = await siblingOrigin(600)
    const store = make()
    const agent = new CacheAgent({ store })
    const get = (language: string) =>
      send(agent, `${origin.url}/page`, { headers: { 'accept-language': language } })
    try {
      await get('en')
      await get('fr')
      const en = await get('en')
      assert.equal(en.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304', name)
      assert.equal(en.body, 'en'.repeat(500))
      assert.equal(origin.count('/page'), 3, `${name}: one request for the revalidation`)
      assert.equal(conditionalGets(origin), 1, name)
    } finally {
      await agent.close()
      await store.close()
      await origin.close()
    }
  }
})

test("a private cache's 304 never rewrites the variants a shared cache stored on the same file", async () => {
  const origin = await siblingOrigin()
  const file = path.join(tempDir(), 'c.db')
  const stores = [new SqliteStore({ path: file }), new SqliteStore({ path: file })]
  const [sharedStore, privateStore] = stores as [SqliteStore, SqliteStore]
  const shared = new CacheAgent({ store: sharedStore })
  const personal = new CacheAgent({ store: privateStore, shared: false })
  const get = (agent: CacheAgent, language: string, headers: Record<string, string> = {}) =>
    send(agent, `${origin.url}/page`, { headers: { 'accept-language': language, ...headers } })
  try {
    await get(shared, 'en')
    await get(shared, 'fr')
    const fr = await get(shared, 'fr')
    assert.equal(fr.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
    const en = await get(personal, 'en', { 'cache-control': 'no-cache', cookie: 'a=1' })
    assert.equal(en.headers['set-cookie'], 'sid=alice')
    const before = origin.count('/page')
    const frAgain = await get(shared, 'fr')
    assert.match(String(frAgain.headers['cache-status']), /^undici-cache; hit; ttl=(58|59|60)$/)
    assert.equal(frAgain.headers['set-cookie'], undefined)
    assert.equal(origin.count('/page'), before)
    const rows = sharedStore.get(`${origin.url}/page`) as { sharedCache?: boolean; varyKey: string }[]
    const fromShared = rows.filter((row) => row.sharedCache === true).map((row) => row.varyKey)
    assert.equal(fromShared.length, 1)
    assert.match(String(fromShared[0]), /"fr"/)
  } finally {
    await shared.close()
    await personal.close()
    for (const store of stores) store.close()
    await origin.close()
  }
})
