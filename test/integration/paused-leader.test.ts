import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import type http from 'node:http'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { CacheStore } from '../../lib/stores/store.js'
import { AsyncStore } from '../helpers/async-store.js'
import { finalBody, readAll, stoppingCaller, within } from '../helpers/caller.js'
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
    if (url.includes('-trailers')) res.addTrailers({ 'x-checksum': 'c0ffee' })
    res.end()
  }
  write()
}

/** `/late-chunked-…`: no Content-Length and no ETag; `/late-trailers-…`: chunked, a strong ETag and a trailer. */
function headersFor(url: string): http.OutgoingHttpHeaders {
  if (url.startsWith('/late-chunked')) return { 'cache-control': 'max-age=60' }
  if (url.startsWith('/late-trailers'))
    return { 'cache-control': 'max-age=60', etag: '"t1"', trailer: 'x-checksum' }
  return { 'cache-control': 'max-age=60', 'content-length': String(BIG.length) }
}

let origin: Origin
before(async () => {
  origin = await startOrigin((req, res) => {
    const url = req.url ?? ''
    res.writeHead(200, headersFor(url))
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
      assert.equal(sha(await finalBody(leader, 'first caller')), sha(BIG))
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
      assert.equal(sha(await finalBody(leader, 'first caller')), sha(BIG))
      assert.equal(origin.count(`/late-live-${kind.name.length}`), 1)
      await cache.close()
    })

    test('a request with a Range sent before the response started is answered while the first caller stays stopped', async () => {
      const cache = makeAgent(kind.make())
      const leader = stoppingCaller(cache.agent, url('late-range'), 'pause')
      await sleep(20)
      const ranged = request(url('late-range'), {
        dispatcher: cache.agent,
        headers: { range: 'bytes=100-199' },
      })
      const res = await within(5000, 'request with a Range', ranged)
      const part = Buffer.from(await res.body.arrayBuffer())
      assert.equal(res.statusCode, 206)
      assert.equal(res.headers['cache-status'], 'undici-cache; fwd=miss; collapsed')
      assert.ok(part.equals(BIG.subarray(100, 200)))
      assert.ok(leader.receivedBytes() < BIG.length, 'the first caller was still stopped')
      leader.resume()
      assert.equal(sha(await finalBody(leader, 'first caller')), sha(BIG))
      assert.equal(origin.count(`/late-range-${kind.name.length}`), 1)
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
      assert.equal(sha(await finalBody(leader, 'first caller')), sha(BIG))
      assert.equal(origin.count(`/late-gone-${kind.name.length}`), 1)
      await cache.close()
    })

    test('when the first caller aborts and then its last waiter, the download stops', async () => {
      const cache = makeAgent(kind.make())
      const leader = stoppingCaller(cache.agent, url('late-all-gone'), 'abort')
      await sleep(20)
      const waiter = stoppingCaller(cache.agent, url('late-all-gone'), 'abort', 3)
      assert.equal((await within(5000, 'first caller', leader.done)).error?.message, 'caller gave up')
      assert.equal((await within(5000, 'waiter', waiter.done)).error?.message, 'caller gave up')
      await sleep(300)
      const written = writtenBytes.get(`/late-all-gone-${kind.name.length}`) ?? 0
      assert.ok(written < BIG.length / 2, `the origin wrote ${written} bytes for nobody`)
      await cache.close()
    })

    test('the trailers reach a first caller that fell behind and read the rest from the store', async () => {
      const cache = makeAgent(kind.make())
      const leader = stoppingCaller(cache.agent, url('late-trailers'), 'pause')
      await sleep(20)
      const waiter = await within(5000, 'waiter', readAll(cache.agent, url('late-trailers')))
      assert.equal(sha(waiter.body), sha(BIG))
      leader.resume()
      const first = await within(5000, 'first caller', leader.done)
      assert.equal(sha(first.body ?? Buffer.alloc(0)), sha(BIG))
      assert.equal(first.trailers?.['x-checksum'], 'c0ffee')
      assert.equal(origin.count(`/late-trailers-${kind.name.length}`), 1)
      await cache.close()
    })

    test('a body the store may refuse and the origin cannot resend a range of: the stopped first caller holds the download; the others go their own way', async () => {
      const cache = makeAgent(kind.make())
      const path = `/late-chunked-${kind.name.length}`
      const leader = stoppingCaller(cache.agent, url('late-chunked'), 'pause')
      await sleep(20)
      const live = within(5000, 'waiter fed live', readAll(cache.agent, url('late-chunked')))
      await leader.stopped
      // fed live up to where the first caller stopped, then the whole body again, checked (BodyDigest)
      assert.equal(sha((await live).body), sha(BIG))
      const [, again] = origin.requests.filter((seen) => seen.url === path)
      assert.equal(again?.headers.range, undefined)
      const late = await within(5000, 'request sent meanwhile', readAll(cache.agent, url('late-chunked')))
      assert.equal(late.status, 'undici-cache; fwd=miss; stored')
      assert.equal(sha(late.body), sha(BIG))
      assert.ok(leader.receivedBytes() < BIG.length, 'the first caller was still stopped')
      leader.resume()
      assert.equal(sha(await finalBody(leader, 'first caller')), sha(BIG))
      assert.equal(origin.count(path), 3)
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
      assert.equal(sha(await finalBody(leader, 'first caller')), sha(BIG))
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

test('an asynchronous store that writes slowly holds the download back, so what waits for it stays bounded', async () => {
  const inner = new MemoryStore({ maxEntryBytes: 32 * MiB, maxBytes: 64 * MiB })
  let storedBytes = 0
  const slowWrites: CacheStore = {
    get: (key) => inner.get(key),
    put(key, meta, expectedSizeBytes) {
      const writer = inner.put(key, meta, expectedSizeBytes)
      if (!writer) return undefined
      return {
        write: (chunk) =>
          new Promise<void>((resolve) =>
            setTimeout(() => {
              storedBytes += chunk.length
              resolve(writer.write(chunk))
            }, 2),
          ),
        commit: () => writer.commit(),
        abort: () => writer.abort(),
      }
    },
    update: (key, id, meta) => inner.update(key, id, meta),
    delete: (key) => inner.delete(key),
    close: () => inner.close(),
  }
  const cache = makeAgent(slowWrites)
  const read = readAll(cache.agent, `${origin.url}/backlog`)
  while ((writtenBytes.get('/backlog') ?? 0) < BIG.length) await sleep(5)
  const behindBytes = BIG.length - storedBytes
  assert.ok(
    behindBytes < 12 * MiB,
    `the origin had sent ${behindBytes} bytes more than the store had written`,
  )
  assert.equal(sha((await within(10_000, 'caller', read)).body), sha(BIG))
  await cache.close()
})
