/** RFC 9111 §4.3.3: a full response to a conditional request says the stored response it named is not suitable. */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { type Dispatcher, request } from 'undici'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { makeAgent, send, sleep, storeKinds, tempDir } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

/** What the origin answers once the first response is stale, by path. */
const NEW_ANSWERS: Record<string, { status: number; headers: Record<string, string>; body: string }> = {
  '/gone': { status: 404, headers: {}, body: 'not found' },
  '/personal': { status: 200, headers: { 'set-cookie': 'sid=1' }, body: 'new page for you' },
  '/no-store': { status: 200, headers: { 'cache-control': 'no-store' }, body: 'new page, not to keep' },
}

/** A stale body read piece by piece (chunk rows, or ServedBody's pieces from memory) while others are stored. */
const OLD_BIG = Buffer.alloc(10 * 1024 * 1024, 'o')

let origin: Origin
let phase: 'first' | 'changed' | 'down' = 'first'

/** Stores the origin's first answer at `url`, waits until it is stale, and turns the origin to its changed answers. */
async function storedThenStale(agent: Dispatcher, url: string): Promise<void> {
  phase = 'first'
  await send(agent, url)
  await sleep(1100)
  phase = 'changed'
}

before(async () => {
  origin = await startOrigin((req, res) => {
    const path = (req.url ?? '').replace(/^\/(swr|sie)/, '').replace(/\?.*/, '')
    if (path === '/plain') return reply(res, 200, {}, 'plain page') // no validator, no lifetime
    if (path === '/replaced' && phase === 'first') {
      const directives = 'max-age=1, stale-while-revalidate=3600'
      return reply(res, 200, { 'cache-control': directives, etag: '"v1"' }, OLD_BIG.toString())
    }
    if (phase === 'first') {
      const directive = req.url?.startsWith('/swr') ? 'stale-while-revalidate=3600' : 'stale-if-error=3600'
      return reply(res, 200, { 'cache-control': `max-age=1, ${directive}`, etag: '"v1"' }, 'old page')
    }
    if (phase === 'down') return reply(res, 503, {}, 'origin down')
    if (path === '/raced-body') {
      // with x-who: slow, the origin fails: its 503's headers at once, its body slowly; else the page is gone
      if (req.headers['x-who'] !== 'slow') return reply(res, 404, {}, 'not found')
      res.writeHead(503, { 'content-length': '10' })
      res.write('down ')
      return setTimeout(() => res.end('down.'), 400)
    }
    if (path === '/raced') {
      // a HEAD's revalidation: the origin fails, slowly; a GET's: the page is gone
      if (req.method === 'HEAD') return setTimeout(() => reply(res, 503, {}), 300)
      return reply(res, 404, {}, 'not found')
    }
    if (path === '/replaced') {
      if (req.headers['if-none-match']) return reply(res, 404, {}, 'not found')
      // slow: still downloading (and being stored) when the stale hit has been read
      res.writeHead(200, { 'cache-control': 'max-age=100', 'content-length': '8' })
      res.write('new ')
      return setTimeout(() => res.end('page'), 300)
    }
    if (path === '/big') {
      // no Content-Length: the store learns it is too large only as it arrives
      res.writeHead(200, { 'cache-control': 'max-age=100', etag: '"v2"' })
      for (let i = 0; i < 3; i++) res.write(Buffer.alloc(64 * 1024, 'n'))
      return res.end()
    }
    if (path === '/for-alice') {
      if (req.headers.authorization) return reply(res, 200, { 'cache-control': 'private' }, 'page for alice')
      return reply(res, 304, { etag: '"v1"', 'cache-control': 'max-age=1, stale-while-revalidate=3600' })
    }
    const answer = NEW_ANSWERS[path] as (typeof NEW_ANSWERS)[string]
    reply(res, answer.status, answer.headers, answer.body)
  })
})
after(() => origin.close())

for (const kind of storeKinds) {
  describe(`a full answer to a revalidation, not stored (${kind.name})`, () => {
    test('in the background (stale-while-revalidate): the stale entry is served once more, then not again', async () => {
      phase = 'first'
      const cache = makeAgent(kind.make())
      const paths = Object.keys(NEW_ANSWERS)
      for (const path of paths) await send(cache.agent, `${origin.url}/swr${path}?${kind.name}`)
      await sleep(1100)
      phase = 'changed'
      for (const path of paths) {
        const url = `${origin.url}/swr${path}?${kind.name}`
        const stale = await send(cache.agent, url)
        assert.equal(stale.body, 'old page', path)
        assert.match(String(stale.headers['cache-status']), /^undici-cache; hit; ttl=-\d+$/)
        await sleep(100) // the background revalidation's answer has come
        const next = await send(cache.agent, url)
        const answer = NEW_ANSWERS[path] as (typeof NEW_ANSWERS)[string]
        assert.equal(next.status, answer.status, path)
        assert.equal(next.body, answer.body, path)
        assert.match(String(next.headers['cache-status']), /^undici-cache; fwd=miss/, path)
        assert.equal(origin.count(`/swr${path}?${kind.name}`), 3, path)
      }
      await cache.close()
    })

    test('in the foreground: the new answer is served, and the old entry is not served stale when the origin fails later', async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}/sie/personal?${kind.name}`
      await storedThenStale(cache.agent, url)
      const changed = await send(cache.agent, url)
      assert.equal(changed.body, 'new page for you')
      assert.equal(changed.headers['cache-status'], 'undici-cache; fwd=stale; detail=set-cookie')
      phase = 'down'
      const down = await send(cache.agent, url)
      assert.equal(down.status, 503)
      assert.equal(down.body, 'origin down')
      assert.equal(origin.count(`/sie/personal?${kind.name}`), 3)
      await cache.close()
    })

    test("a request with credentials whose answer is not stored leaves an entry kept for none: that answer is the user's own", async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}/swr/for-alice?${kind.name}`
      await storedThenStale(cache.agent, url)
      const alice = await send(cache.agent, url, { headers: { authorization: 'Bearer alice' } })
      assert.equal(alice.body, 'old page')
      await sleep(100) // its background revalidation was answered 'private', for alice
      const anonymous = await send(cache.agent, url)
      assert.equal(anonymous.body, 'old page')
      assert.match(String(anonymous.headers['cache-status']), /^undici-cache; hit; ttl=-\d+$/)
      await sleep(100) // and its own background revalidation was answered 304
      assert.equal(origin.count(`/swr/for-alice?${kind.name}`), 3)
      await cache.close()
    })

    test('a response stored for the URL while the stale hit is still read is kept and served', async () => {
      const store =
        kind.name === 'SqliteStore'
          ? new SqliteStore({
              path: join(tempDir(), 'rows.db'),
              bodyFiles: false,
              chunkBytes: 64 * 1024,
              hotBytes: 0,
            })
          : new MemoryStore({ maxEntryBytes: 2 * OLD_BIG.length })
      const cache = makeAgent(store)
      const url = `${origin.url}/swr/replaced?${kind.name}`
      await storedThenStale(cache.agent, url)
      const staleHit = await request(url, { dispatcher: cache.agent }) // its revalidation: a 404
      await sleep(100)
      const storing = await request(url, { dispatcher: cache.agent }) // a miss, stored as it arrives
      assert.equal(storing.headers['cache-status'], 'undici-cache; fwd=miss; stored')
      assert.deepEqual(Buffer.from(await staleHit.body.arrayBuffer()), OLD_BIG)
      assert.equal(await storing.body.text(), 'new page')
      await sleep(50)
      const hit = await send(cache.agent, url)
      assert.equal(hit.body, 'new page')
      assert.match(String(hit.headers['cache-status']), /^undici-cache; hit; ttl=\d+$/)
      assert.equal(origin.count(`/swr/replaced?${kind.name}`), 3)
      await cache.close()
    })

    test('a new answer without Content-Length that the store gives up on as too large puts the entry aside too', async () => {
      const path = join(tempDir(), 'small.db')
      const maxEntryBytes = 128 * 1024
      const store =
        kind.name === 'SqliteStore'
          ? new SqliteStore({ path, maxEntryBytes })
          : new MemoryStore({ maxEntryBytes })
      const cache = makeAgent(store)
      const url = `${origin.url}/swr/big?${kind.name}`
      await storedThenStale(cache.agent, url)
      assert.equal((await send(cache.agent, url)).body, 'old page')
      await sleep(150) // the background revalidation's answer has come, 192 KiB
      const next = await send(cache.agent, url)
      assert.equal(next.body.length, 3 * 64 * 1024)
      assert.equal(next.headers['cache-status'], 'undici-cache; fwd=miss; stored')
      assert.equal(origin.count(`/swr/big?${kind.name}`), 3)
      await cache.close()
    })

    test('in a private cache, with Authorization: the stale entry is not served again either', async () => {
      phase = 'first'
      const cache = makeAgent(kind.make(), { shared: false })
      const url = `${origin.url}/swr/gone?private-${kind.name}`
      const headers = { authorization: 'Bearer me' }
      await send(cache.agent, url, { headers })
      await sleep(1100)
      phase = 'changed'
      assert.equal((await send(cache.agent, url, { headers })).body, 'old page')
      await sleep(100)
      const next = await send(cache.agent, url, { headers })
      assert.deepEqual([next.status, next.body], [404, 'not found'])
      await cache.close()
    })

    test('an entry without validators kept by cache.ttl stays after a request without ttl (its request was not conditional)', async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}/plain?${kind.name}`
      await send(cache.agent, url, { cache: { ttl: 60 } })
      const unforced = await send(cache.agent, url)
      assert.equal(unforced.headers['cache-status'], 'undici-cache; fwd=stale; detail=no-freshness')
      const forced = await send(cache.agent, url, { cache: { ttl: 60 } })
      // the origin's Date is to the second, and a loaded machine may take a second more
      assert.match(String(forced.headers['cache-status']), /^undici-cache; hit; ttl=(58|59|60)$/)
      assert.equal(origin.count(`/plain?${kind.name}`), 2)
      await cache.close()
    })

    test('a revalidation in flight when another put the entry aside is not served it under stale-if-error', async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}/sie/raced?${kind.name}`
      await storedThenStale(cache.agent, url)
      const head = send(cache.agent, url, { method: 'HEAD' }) // its answer: a 503, in 300 ms
      await sleep(50)
      const gone = await send(cache.agent, url) // a 404: the entry is put aside
      assert.deepEqual([gone.status, gone.body], [404, 'not found'])
      const failed = await head
      assert.equal(failed.status, 503)
      assert.doesNotMatch(String(failed.headers['cache-status']), /stale-if-error/)
      await cache.close()
    })

    test('an error whose headers came before another revalidation put the entry aside is not answered with it', async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}/sie/raced-body?${kind.name}`
      await storedThenStale(cache.agent, url)
      const slow = send(cache.agent, url, { headers: { 'x-who': 'slow', authorization: 'Bearer x' } })
      await sleep(100) // its 503's headers came, its body has not
      assert.equal((await send(cache.agent, url)).status, 404) // the entry is put aside
      const failed = await slow
      assert.deepEqual([failed.status, failed.body], [503, 'down down.'])
      assert.doesNotMatch(String(failed.headers['cache-status']), /stale-if-error/)
      await cache.close()
    })
  })
}
