/**
 * RFC 9111 §4.3.4, §5.2.2.7: a 304 that makes the stored response private (in a shared cache) or no-store
 * updates it into one that may not be reused. Its removal waits until the response served from it has
 * read its body; meanwhile nobody else is served it, not even inside stale-while-revalidate.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { CacheStore } from '../../lib/stores/store.js'
import { send, sleep, tempDir } from '../helpers/client.js'
import { type Origin, startOrigin } from '../helpers/origin.js'

const BODY = Buffer.alloc(4 * 1024 * 1024, 'p')
const stores: { name: string; make: () => CacheStore }[] = [
  { name: 'SqliteStore, body files', make: () => new SqliteStore({ path: join(tempDir(), 'f.db') }) },
  {
    name: 'SqliteStore, chunk rows',
    make: () => new SqliteStore({ path: join(tempDir(), 'r.db'), bodyFiles: false }),
  },
  { name: 'MemoryStore', make: () => new MemoryStore({ maxEntryBytes: 8 * 1024 * 1024 }) },
]

for (const kind of stores) {
  describe(`a stored response a 304 made unusable (${kind.name})`, () => {
    let origin: Origin
    /** What the next 304 says besides its ETag. */
    let notModified: Record<string, string> = {}

    before(async () => {
      origin = await startOrigin((req, res) => {
        if (req.headers['if-none-match'] === '"p1"') {
          res.writeHead(304, { etag: '"p1"', ...notModified })
          return res.end()
        }
        // the first response of a path is stale at once; the next one stays fresh
        const first = origin.count(req.url) === 1
        res.writeHead(200, {
          'cache-control': first ? 'max-age=0, stale-while-revalidate=60' : 'max-age=60',
          etag: '"p1"',
        })
        res.end(BODY)
      })
    })
    after(() => origin.close())

    for (const cacheControl of ['private', 'no-store']) {
      test(`after a 304 with ${cacheControl}, is served to nobody else while its reader reads`, async () => {
        notModified = { 'cache-control': cacheControl }
        const store = kind.make()
        const cache = new CacheAgent({ store })
        const path = `/${cacheControl}-${kind.name.replace(/\W+/g, '-')}`
        const url = `${origin.url}${path}`
        assert.equal((await send(cache, url)).headers['cache-status'], 'undici-cache; fwd=miss; stored')
        // one client makes the cache revalidate, and reads the body it is served slowly
        const reader = await request(url, { dispatcher: cache, headers: { 'cache-control': 'no-cache' } })
        assert.equal(reader.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
        assert.equal(reader.headers['cache-control'], cacheControl)
        const pieces = reader.body[Symbol.asyncIterator]()
        const first = await pieces.next()
        let readBytes = first.done ? 0 : first.value.length
        await sleep(50)
        const other = await send(cache, url)
        assert.equal(other.headers['cache-status'], 'undici-cache; fwd=miss; stored')
        assert.equal(other.body.length, BODY.length)
        for (let step = await pieces.next(); !step.done; step = await pieces.next())
          readBytes += step.value.length
        assert.equal(readBytes, BODY.length)
        assert.equal(origin.count(path), 3)
        assert.deepEqual(
          origin.requests.filter((seen) => seen.url === path).map((seen) => seen.headers['if-none-match']),
          [undefined, '"p1"', undefined],
        )
        await sleep(50)
        // what the other client stored stays
        const later = await send(cache, url)
        assert.match(String(later.headers['cache-status']), /^undici-cache; hit; ttl=/)
        assert.equal(origin.count(path), 3)
        await cache.close()
        await store.close()
      })
    }
  })
}

test('a HEAD while the entry is retired leaves it to its reader (SqliteStore, chunk rows)', async () => {
  const origin = await startOrigin((req, res) => {
    if (req.headers['if-none-match'] === '"h1"') {
      res.writeHead(304, { etag: '"h1"', 'cache-control': 'private' })
      return res.end()
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { etag: '"h1"', 'cache-control': 'private', 'content-length': BODY.length })
      return res.end()
    }
    res.writeHead(200, { 'cache-control': 'max-age=0, stale-while-revalidate=60', etag: '"h1"' })
    res.end(BODY)
  })
  const store = new SqliteStore({ path: join(tempDir(), 'head.db'), bodyFiles: false })
  const cache = new CacheAgent({ store })
  const url = `${origin.url}/head-while-retired`
  await send(cache, url)
  const reader = await request(url, { dispatcher: cache, headers: { 'cache-control': 'no-cache' } })
  assert.equal(reader.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
  const pieces = reader.body[Symbol.asyncIterator]()
  const first = await pieces.next()
  let readBytes = first.done ? 0 : first.value.length
  await sleep(50)
  const head = await send(cache, url, { method: 'HEAD' })
  assert.equal(head.headers['cache-status'], 'undici-cache; fwd=miss; detail=method')
  await sleep(50)
  for (let step = await pieces.next(); !step.done; step = await pieces.next()) readBytes += step.value.length
  assert.equal(readBytes, BODY.length)
  // the body came from the store whole: no request for its rest
  assert.deepEqual(
    origin.requests.map(
      (seen) => `${seen.method} ${seen.headers['if-none-match'] ?? ''} ${seen.headers.range ?? ''}`,
    ),
    ['GET  ', 'GET "h1" ', 'HEAD  '],
  )
  await cache.close()
  await store.close()
  await origin.close()
})
