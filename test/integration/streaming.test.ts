import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { AsyncStore } from '../helpers/async-store.js'
import { makeAgent, send, sleep, tempDir } from '../helpers/client.js'
import { type Origin, startOrigin } from '../helpers/origin.js'

const MiB = 1024 * 1024
const SMALL = Buffer.from(Array.from({ length: 10_000 }, (_, i) => 65 + (i % 26)))
const LARGE = Buffer.alloc(32 * MiB, 7)

let origin: Origin
before(async () => {
  origin = await startOrigin((req, res) => {
    const body = req.url === '/large' ? LARGE : SMALL
    res.writeHead(200, { 'cache-control': 'max-age=60', etag: '"b"', 'content-length': String(body.length) })
    res.end(body)
  })
})
after(() => origin.close())

const stores = [
  {
    name: 'SqliteStore in 1 KiB chunks',
    make: () => new SqliteStore({ path: path.join(tempDir(), 'c.db'), chunkBytes: 1024 }),
  },
  {
    // read synchronously, piece by piece (no body files, no hot tier)
    name: 'SqliteStore in 1 KiB chunk rows',
    make: () =>
      new SqliteStore({
        path: path.join(tempDir(), 'r.db'),
        chunkBytes: 1024,
        bodyFiles: false,
        hotBytes: 0,
      }),
  },
  {
    name: 'an asynchronous store',
    make: () => new AsyncStore(new MemoryStore({ maxEntryBytes: 64 * MiB, maxBytes: 128 * MiB })),
  },
]

for (const kind of stores) {
  describe(`streaming from ${kind.name}`, () => {
    test('ranges across chunk boundaries are cut exactly', async () => {
      const cache = makeAgent(kind.make())
      const full = await send(cache.agent, `${origin.url}/small`)
      assert.equal(full.body, SMALL.toString())
      for (const [range, start, end] of [
        ['bytes=1000-3071', 1000, 3071],
        ['bytes=1023-1024', 1023, 1024],
        ['bytes=-1500', 8500, 9999],
        ['bytes=9999-', 9999, 9999],
      ] as const) {
        const part = await send(cache.agent, `${origin.url}/small`, { headers: { range } })
        assert.equal(part.status, 206, range)
        assert.equal(part.body, SMALL.subarray(start, end + 1).toString(), range)
      }
      const hit = await send(cache.agent, `${origin.url}/small`)
      assert.equal(hit.body, SMALL.toString())
      assert.match(String(hit.headers['cache-status']), /^undici-cache; hit/)
      await cache.close()
    })

    test('a caller that stops reading pauses the stored body; one that aborts releases it', async () => {
      const cache = makeAgent(kind.make())
      await (await request(`${origin.url}/large`, { dispatcher: cache.agent })).body.dump({ limit: 64 * MiB })
      const paused = await request(`${origin.url}/large`, { dispatcher: cache.agent })
      assert.match(String(paused.headers['cache-status']), /^undici-cache; hit/)
      await sleep(200)
      assert.ok(
        paused.body.readableLength < 4 * MiB,
        `buffered ${paused.body.readableLength} bytes while paused`,
      )
      let received = 0
      for await (const chunk of paused.body) received += chunk.length
      assert.equal(received, LARGE.length)
      const aborted = await request(`${origin.url}/large`, { dispatcher: cache.agent })
      await assert.rejects(async () => {
        for await (const _chunk of aborted.body) aborted.body.destroy(new Error('caller gave up'))
      }, /caller gave up/)
      const again = await send(cache.agent, `${origin.url}/small`)
      assert.equal(again.body, SMALL.toString())
      assert.equal(origin.count('/large'), 1)
      origin.requests.length = 0
      await cache.close()
    })
  })
}
