import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { rmSync } from 'node:fs'
import type http from 'node:http'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Dispatcher } from 'undici'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { AsyncStore, FailingWrites, VanishingBodies } from '../helpers/async-store.js'
import { finalBody, readAll, stoppingCaller, within } from '../helpers/caller.js'
import { makeAgent, sleep, tempDir } from '../helpers/client.js'
import { type Origin, startOrigin } from '../helpers/origin.js'
import { bodyDirOf, bodyFileNames } from '../stores/helpers.js'

const KiB = 1024
const MiB = 1024 * KiB
const BIG = Buffer.from(Array.from({ length: 8 * MiB }, (_, i) => (i * 31) % 251))
/** BIG with its first byte changed: what `/weak-changed-…` sends the second time. */
const CHANGED = Buffer.from(BIG)
CHANGED[0] = (CHANGED[0] as number) ^ 1
const sha = (buffer: Buffer) => createHash('sha256').update(buffer).digest('hex')

/** Writes `body` only as fast as the client reads it, then the trailers if any. */
function sendPaced(res: http.ServerResponse, body: Buffer, trailers?: Record<string, string>): void {
  let offset = 0
  const write = () => {
    while (offset < body.length) {
      const piece = body.subarray(offset, offset + 64 * KiB)
      offset += piece.length
      if (!res.write(piece)) return void res.once('drain', write)
    }
    if (trailers) res.addTrailers(trailers)
    res.end()
  }
  write()
}

/** 256 KiB every 20 ms: 8 MiB take about 650 ms. */
function sendSlowly(res: http.ServerResponse, body: Buffer): void {
  let offset = 0
  const timer = setInterval(() => {
    res.write(body.subarray(offset, offset + 256 * KiB))
    offset += 256 * KiB
    if (offset < body.length) return
    clearInterval(timer)
    res.end()
  }, 20)
}

/** A 206 from `fromByte`: to the end, or (`/short-range-…`, `/long-range-…`) wrongly shorter or longer. */
function restAnswer(url: string, fromByte: number): { bytes: Buffer; contentRange: string } {
  if (url.startsWith('/short-range-'))
    return {
      bytes: BIG.subarray(fromByte, fromByte + 1024),
      contentRange: `bytes ${fromByte}-${fromByte + 1023}/${BIG.length}`,
    }
  if (url.startsWith('/long-range-')) {
    const longer = Buffer.concat([BIG, Buffer.alloc(1000, 1)])
    return {
      bytes: longer.subarray(fromByte),
      contentRange: `bytes ${fromByte}-${longer.length - 1}/${longer.length}`,
    }
  }
  return { bytes: BIG.subarray(fromByte), contentRange: `bytes ${fromByte}-${BIG.length - 1}/${BIG.length}` }
}

/** ETags per path prefix; `/changed-…` answers a second request with a new representation. */
function etagFor(url: string, seen: number): string {
  if (url.startsWith('/weak-')) return 'W/"v1"' // `/weak-changed-…` sends another body the second time
  if (url.startsWith('/changed-') && seen > 1) return '"v2"'
  return '"v1"'
}

let origin: Origin
before(async () => {
  origin = await startOrigin((req, res) => {
    const url = req.url ?? ''
    const etag = etagFor(url, origin.count(url))
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
    const honoursRange = !url.startsWith('/no-ranges-') && range && req.headers['if-range'] === etag
    const fromByte = honoursRange ? Number(range[1]) : 0
    const whole = url.startsWith('/weak-changed-') && origin.count(url) > 1 ? CHANGED : BIG
    const body = honoursRange ? restAnswer(url, fromByte) : { bytes: whole, contentRange: undefined }
    const length = url.startsWith('/trailers-')
      ? { trailer: 'x-checksum' }
      : { 'content-length': String(body.bytes.length) }
    const headers = { 'cache-control': 'max-age=60', etag, ...length }
    if (body.contentRange) res.writeHead(206, { ...headers, 'content-range': body.contentRange })
    else res.writeHead(200, headers)
    if (url.startsWith('/slow-')) return void sendSlowly(res, BIG)
    // the first request answers after a pause, so a second one sent meanwhile is fed it as it arrives
    const trailers = url.startsWith('/trailers-') ? { 'x-checksum': 'c0ffee' } : undefined
    setTimeout(() => sendPaced(res, body.bytes, trailers), req.headers.range ? 0 : 150)
  })
})
after(() => origin.close())

const ranges = (path: string) =>
  origin.requests.filter((r) => r.url === path).map((r) => [r.headers.range, r.headers['if-range']])

/** A first caller reading `path` whole, and 20 ms later a waiter on it that pauses at once. */
async function firstAndPausedWaiter(agent: Dispatcher, path: string) {
  const first = readAll(agent, `${origin.url}${path}`)
  await sleep(20)
  return { first, waiter: stoppingCaller(agent, `${origin.url}${path}`, 'pause') }
}

describe('a shared download the store keeps no copy of', () => {
  test('a waiter, after the write failed mid-body: a Range request with If-Range', async () => {
    const cache = makeAgent(new FailingWrites(2 * MiB))
    const { first, waiter } = await firstAndPausedWaiter(cache.agent, '/write-fails')
    assert.equal(sha((await within(5000, 'first caller', first)).body), sha(BIG))
    const behindAt = waiter.receivedBytes()
    waiter.resume()
    assert.equal(sha(await finalBody(waiter, 'waiter')), sha(BIG))
    assert.deepEqual(ranges('/write-fails'), [
      [undefined, undefined],
      [`bytes=${behindAt}-`, '"v1"'],
    ])
    await cache.close()
  })

  test('the first caller, stopped while a waiter read on, when the write failed', async () => {
    const cache = makeAgent(new FailingWrites(2 * MiB))
    const first = stoppingCaller(cache.agent, `${origin.url}/first-behind`, 'pause')
    await sleep(20)
    const waiter = within(5000, 'waiter', readAll(cache.agent, `${origin.url}/first-behind`))
    assert.equal(sha((await waiter).body), sha(BIG))
    first.resume()
    assert.equal(sha(await finalBody(first, 'first caller')), sha(BIG))
    assert.equal(origin.count('/first-behind'), 2)
    await cache.close()
  })

  test('an entry evicted before the reader caught up', async () => {
    const cache = makeAgent(new MemoryStore({ maxEntryBytes: 8 * MiB, maxBytes: 10 * MiB }))
    const { first, waiter } = await firstAndPausedWaiter(cache.agent, '/evicted')
    await within(5000, 'first caller', first)
    const other = await readAll(cache.agent, `${origin.url}/evicts`)
    assert.equal(other.status, 'undici-cache; fwd=miss; stored')
    assert.equal(
      (await readAll(cache.agent, `${origin.url}/evicted`)).status,
      'undici-cache; fwd=miss; stored',
    )
    waiter.resume()
    assert.equal(sha(await finalBody(waiter, 'waiter')), sha(BIG))
    assert.equal(origin.count('/evicted'), 3)
    await cache.close()
  })

  test('CacheAgent#close() lets a reader whose entry was removed ask the origin for the rest; new requests are refused', async () => {
    const store = new MemoryStore({ maxEntryBytes: 16 * MiB })
    const cache = makeAgent(store)
    const { first, waiter } = await firstAndPausedWaiter(cache.agent, '/closing')
    await within(5000, 'first caller', first)
    store.delete(`${origin.url}/closing`)
    let closed = false
    const closing = cache.agent.close().then(() => {
      closed = true
    })
    await assert.rejects(readAll(cache.agent, `${origin.url}/after-close`), { name: 'ClientClosedError' })
    await sleep(50)
    assert.equal(closed, false, 'close() waits for the reader')
    waiter.resume()
    assert.equal(sha(await finalBody(waiter, 'waiter')), sha(BIG))
    await closing
    assert.equal(origin.count('/closing'), 2)
    assert.equal(origin.count('/after-close'), 0)
  })

  test('CacheAgent#close() called while the download runs: a reader that falls behind still gets the rest from the origin', async () => {
    const cache = makeAgent(new FailingWrites(2 * MiB))
    const { first, waiter } = await firstAndPausedWaiter(cache.agent, '/mid-closing')
    await sleep(20) // the origin answers after 150 ms
    const closing = cache.agent.close()
    assert.equal(sha((await within(5000, 'first caller', first)).body), sha(BIG))
    waiter.resume()
    assert.equal(sha(await finalBody(waiter, 'waiter')), sha(BIG))
    await closing
    assert.equal(origin.count('/mid-closing'), 2)
  })

  test('an origin that ignores Range: its 200 with the same strong ETag, minus the bytes already read', async () => {
    const cache = makeAgent(new FailingWrites(2 * MiB))
    const { first, waiter } = await firstAndPausedWaiter(cache.agent, '/no-ranges-x')
    await within(5000, 'first caller', first)
    waiter.resume()
    assert.equal(sha(await finalBody(waiter, 'waiter')), sha(BIG))
    assert.equal(origin.count('/no-ranges-x'), 2)
    await cache.close()
  })

  test('a weak ETag: the whole body again, the rest spliced on once the bytes before it check the same', async () => {
    const cache = makeAgent(new FailingWrites(2 * MiB))
    const { first, waiter } = await firstAndPausedWaiter(cache.agent, '/weak-etag')
    assert.equal(sha((await within(5000, 'first caller', first)).body), sha(BIG))
    waiter.resume()
    assert.equal(sha(await finalBody(waiter, 'waiter')), sha(BIG))
    assert.deepEqual(ranges('/weak-etag'), [
      [undefined, undefined],
      [undefined, undefined],
    ])
    await cache.close()
  })

  for (const [path, why] of [
    ['/weak-changed-x', 'a weak ETag and a body that changed meanwhile'],
    ['/changed-etag', 'a representation that changed meanwhile'],
    ['/short-range-x', 'a 206 that stops short of the end'],
    ['/long-range-x', 'a 206 for a longer representation'],
  ] as const) {
    test(`${why}: the reader gets an error, never a short or spliced body`, async () => {
      const cache = makeAgent(new FailingWrites(2 * MiB))
      const { first, waiter } = await firstAndPausedWaiter(cache.agent, path)
      assert.equal(sha((await within(5000, 'first caller', first)).body), sha(BIG))
      waiter.resume()
      const read = await within(5000, 'waiter', waiter.done)
      assert.equal(read.body, undefined)
      assert.match(String(read.error?.message), /rest of a shared response/)
      assert.equal(origin.count(path), 2)
      await cache.close()
    })
  }

  test('the trailers of the answer to the Range request reach the reader', async () => {
    const cache = makeAgent(new FailingWrites(2 * MiB))
    const { first, waiter } = await firstAndPausedWaiter(cache.agent, '/trailers-x')
    await within(5000, 'first caller', first)
    waiter.resume()
    const read = await within(5000, 'waiter', waiter.done)
    assert.equal(sha(read.body ?? Buffer.alloc(0)), sha(BIG))
    assert.equal(read.trailers?.['x-checksum'], 'c0ffee')
    assert.equal(origin.count('/trailers-x'), 2)
    await cache.close()
  })

  test('a stored body that goes missing while the reader catches up: the rest comes from the origin', async () => {
    const cache = makeAgent(new VanishingBodies(4 * MiB, MiB))
    const { first, waiter } = await firstAndPausedWaiter(cache.agent, '/vanishes')
    await within(5000, 'first caller', first)
    assert.ok(waiter.receivedBytes() < 4 * MiB)
    waiter.resume()
    assert.equal(sha(await finalBody(waiter, 'waiter')), sha(BIG))
    const [, rest] = ranges('/vanishes')
    const restFrom = Number(/^bytes=(\d+)-$/.exec(String(rest?.[0]))?.[1])
    assert.equal(restFrom, 4 * MiB, 'the rest from where the store read stopped')
    await cache.close()
  })

  test('a body file removed before the reader caught up, read through an asynchronous store', async () => {
    const dbPath = join(tempDir(), 'removed.db')
    const cache = makeAgent(new AsyncStore(new SqliteStore({ path: dbPath, hotBytes: 0 })))
    const { first, waiter } = await firstAndPausedWaiter(cache.agent, '/file-removed')
    await within(5000, 'first caller', first)
    for (const name of bodyFileNames(dbPath)) rmSync(join(bodyDirOf(dbPath), name))
    waiter.resume()
    assert.equal(sha(await finalBody(waiter, 'waiter')), sha(BIG))
    assert.equal(origin.count('/file-removed'), 2)
    await cache.close()
  })

  test('a write failing asynchronously lets a request waiting for the entry go its own way at once', async () => {
    const cache = makeAgent(new FailingWrites(2 * MiB, true))
    let firstDone = false
    const first = readAll(cache.agent, `${origin.url}/slow-write-fails`).finally(() => {
      firstDone = true
    })
    await sleep(200)
    const late = readAll(cache.agent, `${origin.url}/slow-write-fails`)
    await within(
      3000,
      'the second origin request',
      untilTrue(() => origin.count('/slow-write-fails') === 2),
    )
    assert.equal(firstDone, false, 'it did not wait for the first download to end')
    assert.equal(sha((await first).body), sha(BIG))
    assert.equal(sha((await late).body), sha(BIG))
    await cache.close()
  })
})

async function untilTrue(check: () => boolean): Promise<void> {
  while (!check()) await sleep(10)
}
