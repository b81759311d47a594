import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import type http from 'node:http'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { AsyncStore } from '../helpers/async-store.js'
import { readAll, stoppingCaller, within } from '../helpers/caller.js'
import { makeAgent, sleep, tempDir } from '../helpers/client.js'
import { type Origin, startOrigin } from '../helpers/origin.js'

const KiB = 1024
const MiB = 1024 * KiB
const BIG = Buffer.from(Array.from({ length: 24 * MiB }, (_, i) => (i * 13) % 251))
const sha = (buffer: Buffer) => createHash('sha256').update(buffer).digest('hex')

/** Bytes the origin has handed to its socket, per path: it writes only as fast as the client reads. */
const writtenBytes = new Map<string, number>()

function sendPaced(url: string, res: http.ServerResponse): void {
  let offset = 0
  const write = () => {
    while (offset < BIG.length) {
      const piece = BIG.subarray(offset, offset + 64 * KiB)
      offset += piece.length
      writtenBytes.set(url, offset)
      if (!res.write(piece)) return void res.once('drain', write)
    }
    res.end()
  }
  write()
}

let origin: Origin
before(async () => {
  origin = await startOrigin((req, res) => {
    const url = req.url ?? ''
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(BIG.length) })
    // /late-… answers after a pause, so requests sent meanwhile wait on the first one's flight
    setTimeout(() => sendPaced(url, res), url.startsWith('/late-') ? 150 : 0)
  })
})
after(() => origin.close())

const stores = [
  { name: 'SqliteStore', make: () => new SqliteStore({ path: path.join(tempDir(), 'p.db') }) },
  {
    name: 'an asynchronous store',
    make: () => new AsyncStore(new MemoryStore({ maxEntryBytes: 32 * MiB, maxBytes: 64 * MiB })),
  },
]

for (const kind of stores) {
  describe(`the first caller's pace holds up nobody else (${kind.name})`, () => {
    const url = (name: string) => `${origin.url}/${name}-${kind.name.length}`

    test('a request sent while the first caller has stopped reading is answered without waiting for it', async () => {
      const cache = makeAgent(kind.make())
      const leader = stoppingCaller(cache.agent, url('joined'), 'pause')
      await leader.stopped
      const second = await within(5000, 'second request', readAll(cache.agent, url('joined')))
      assert.equal(sha(second.body), sha(BIG))
      assert.equal(second.status, 'undici-cache; fwd=miss; collapsed')
      assert.ok(leader.receivedBytes() < BIG.length, 'the first caller was still stopped')
      leader.resume()
      const first = await within(5000, 'first caller', leader.done)
      assert.equal(sha(first.body ?? Buffer.alloc(0)), sha(BIG))
      assert.equal(origin.count(`/joined-${kind.name.length}`), 1)
      await cache.close()
    })

    test('a waiter fed the response as it arrives reads it all while the first caller stays stopped', async () => {
      const cache = makeAgent(kind.make())
      const leader = stoppingCaller(cache.agent, url('late-live'), 'pause')
      await sleep(20)
      const waiter = within(5000, 'waiter', readAll(cache.agent, url('late-live')))
      await leader.stopped
      const read = await waiter
      assert.equal(sha(read.body), sha(BIG))
      assert.equal(read.status, 'undici-cache; fwd=miss; collapsed')
      assert.ok(leader.receivedBytes() < BIG.length, 'the first caller was still stopped')
      leader.resume()
      assert.equal(sha((await within(5000, 'first caller', leader.done)).body ?? Buffer.alloc(0)), sha(BIG))
      assert.equal(origin.count(`/late-live-${kind.name.length}`), 1)
      await cache.close()
    })

    test('when the first caller aborts, its waiters still get the whole body, and it is stored', async () => {
      const cache = makeAgent(kind.make())
      const leader = stoppingCaller(cache.agent, url('late-abort'), 'abort')
      await sleep(20)
      const waiter = within(5000, 'waiter', readAll(cache.agent, url('late-abort')))
      const first = await within(5000, 'first caller', leader.done)
      assert.equal(first.error?.message, 'caller gave up')
      const read = await waiter
      assert.equal(sha(read.body), sha(BIG))
      assert.equal(read.status, 'undici-cache; fwd=miss; collapsed')
      const again = await readAll(cache.agent, url('late-abort'))
      const ttl = /^undici-cache; hit; ttl=(\d+)$/.exec(String(again.status))?.[1]
      assert.ok(Number(ttl) > 50 && Number(ttl) <= 60, `a hit with the entry stored: ${again.status}`)
      assert.equal(sha(again.body), sha(BIG))
      assert.equal(origin.count(`/late-abort-${kind.name.length}`), 1)
      await cache.close()
    })

    test('once its last waiter gives up, the download waits for the stopped first caller again', async () => {
      const cache = makeAgent(kind.make())
      const leader = stoppingCaller(cache.agent, url('late-gone'), 'pause')
      await sleep(20)
      const waiter = stoppingCaller(cache.agent, url('late-gone'), 'abort', 2)
      assert.equal((await within(5000, 'waiter', waiter.done)).error?.message, 'caller gave up')
      await sleep(300)
      const written = writtenBytes.get(`/late-gone-${kind.name.length}`) ?? 0
      assert.ok(written < BIG.length / 2, `the origin wrote ${written} bytes for a stopped reader`)
      leader.resume()
      assert.equal(sha((await within(5000, 'first caller', leader.done)).body ?? Buffer.alloc(0)), sha(BIG))
      assert.equal(origin.count(`/late-gone-${kind.name.length}`), 1)
      await cache.close()
    })

    test('a caller alone that stops reading stops the download; it resumes when an identical request arrives', async () => {
      const cache = makeAgent(kind.make())
      const leader = stoppingCaller(cache.agent, url('alone'), 'pause')
      await leader.stopped
      await sleep(300)
      const whileAlone = writtenBytes.get(`/alone-${kind.name.length}`) ?? 0
      assert.ok(whileAlone < BIG.length / 2, `the origin wrote ${whileAlone} bytes for a stopped reader`)
      const second = await within(5000, 'second request', readAll(cache.agent, url('alone')))
      assert.equal(sha(second.body), sha(BIG))
      leader.resume()
      assert.equal(sha((await within(5000, 'first caller', leader.done)).body ?? Buffer.alloc(0)), sha(BIG))
      assert.equal(origin.count(`/alone-${kind.name.length}`), 1)
      await cache.close()
    })

    test('a caller alone that aborts stops the download, and nothing is stored', async () => {
      const cache = makeAgent(kind.make())
      const leader = stoppingCaller(cache.agent, url('alone-abort'), 'abort')
      assert.equal((await within(5000, 'first caller', leader.done)).error?.message, 'caller gave up')
      await sleep(100)
      assert.ok((writtenBytes.get(`/alone-abort-${kind.name.length}`) ?? 0) < BIG.length)
      const second = await readAll(cache.agent, url('alone-abort'))
      assert.equal(second.status, 'undici-cache; fwd=miss; stored')
      assert.equal(origin.count(`/alone-abort-${kind.name.length}`), 2)
      await cache.close()
    })
  })
}
