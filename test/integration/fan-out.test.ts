import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { AsyncStore } from '../helpers/async-store.js'
import { makeAgent, sleep, tempDir } from '../helpers/client.js'
import { type Origin, startOrigin } from '../helpers/origin.js'

const MiB = 1024 * 1024
const BIG = Buffer.from(Array.from({ length: 4 * MiB }, (_, i) => (i * 7) % 251))
const sha = (buffer: Buffer) => createHash('sha256').update(buffer).digest('hex')

let origin: Origin
let finishedAtMs = 0
before(async () => {
  origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(BIG.length) })
    if (req.url?.startsWith('/broken')) {
      res.write(BIG.subarray(0, MiB))
      return void setTimeout(() => res.destroy(), 200)
    }
    res.write(BIG.subarray(0, MiB))
    setTimeout(() => {
      finishedAtMs = performance.now()
      res.end(BIG.subarray(MiB))
    }, 300)
  })
})
after(() => origin.close())

const stores = [
  { name: 'SqliteStore', make: () => new SqliteStore({ path: path.join(tempDir(), 'f.db') }) },
  { name: 'an asynchronous store', make: () => new AsyncStore(new MemoryStore({ maxEntryBytes: 8 * MiB })) },
]

for (const kind of stores) {
  describe(`waiters are fed the response as it arrives (${kind.name})`, () => {
    test('every waiter gets its first bytes before the origin has finished, and the whole body', async () => {
      const cache = makeAgent(kind.make())
      const path = `/live-${kind.name.length}`
      const reads = await Promise.all(
        Array.from({ length: 6 }, async () => {
          const res = await request(`${origin.url}${path}`, { dispatcher: cache.agent })
          const chunks: Buffer[] = []
          let firstAtMs = 0
          for await (const chunk of res.body) {
            firstAtMs ||= performance.now()
            chunks.push(chunk)
          }
          return { status: String(res.headers['cache-status']), firstAtMs, body: Buffer.concat(chunks) }
        }),
      )
      assert.equal(origin.count(path), 1)
      for (const read of reads) {
        assert.equal(sha(read.body), sha(BIG))
        assert.ok(read.firstAtMs < finishedAtMs, 'first bytes arrived while the origin was still sending')
      }
      assert.equal(reads.filter((r) => r.status === 'undici-cache; fwd=miss; collapsed').length, 5)
      await cache.close()
    })

    test('a waiter that stops reading falls behind and reads the rest from the store', async () => {
      const cache = makeAgent(kind.make())
      const path = `/slow-${kind.name.length}`
      const leader = request(`${origin.url}${path}`, { dispatcher: cache.agent })
      const slow = request(`${origin.url}${path}`, { dispatcher: cache.agent })
      const leaderBody = Buffer.from(await (await leader).body.arrayBuffer())
      await sleep(100)
      const slowRes = await slow
      const slowBody = Buffer.from(await slowRes.body.arrayBuffer())
      assert.equal(sha(leaderBody), sha(BIG))
      assert.equal(sha(slowBody), sha(BIG))
      assert.equal(slowRes.headers['cache-status'], 'undici-cache; fwd=miss; collapsed')
      assert.equal(origin.count(path), 1)
      await cache.close()
    })

    test('CacheAgent#close() waits for a waiter that fell behind to read the rest from the store', async () => {
      const cache = makeAgent(kind.make())
      const path = `/closing-${kind.name.length}`
      const leader = request(`${origin.url}${path}`, { dispatcher: cache.agent })
      const slow = request(`${origin.url}${path}`, { dispatcher: cache.agent })
      assert.equal(sha(Buffer.from(await (await leader).body.arrayBuffer())), sha(BIG))
      const slowRes = await slow
      let closed = false
      const closing = cache.agent.close().then(() => {
        closed = true
      })
      await sleep(100)
      assert.equal(closed, false, 'close() waits while the rest is unread')
      const slowBody = Buffer.from(await slowRes.body.arrayBuffer())
      await closing
      assert.equal(sha(slowBody), sha(BIG))
      assert.equal(origin.count(path), 1)
      await cache.store.close()
    })

    test('when the shared download fails, its waiters see the error, never a short body', async () => {
      const cache = makeAgent(kind.make())
      const path = `/broken-${kind.name.length}`
      const results = await Promise.allSettled(
        Array.from({ length: 3 }, async () => {
          const res = await request(`${origin.url}${path}`, { dispatcher: cache.agent })
          return Buffer.from(await res.body.arrayBuffer())
        }),
      )
      assert.deepEqual(
        results.map((r) => r.status),
        ['rejected', 'rejected', 'rejected'],
      )
      assert.equal(origin.count(path), 1)
      await cache.close()
    })
  })
}
