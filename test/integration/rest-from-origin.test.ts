import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import type http from 'node:http'
import { after, before, describe, test } from 'node:test'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { CacheStore, EntryMeta, EntryWriter, StoredEntry } from '../../lib/stores/store.js'
import { finalBody, readAll, stoppingCaller, within } from '../helpers/caller.js'
import { makeAgent, sleep } from '../helpers/client.js'
import { type Origin, startOrigin } from '../helpers/origin.js'

const KiB = 1024
const MiB = 1024 * KiB
const BIG = Buffer.from(Array.from({ length: 8 * MiB }, (_, i) => (i * 31) % 251))
const sha = (buffer: Buffer) => createHash('sha256').update(buffer).digest('hex')

/**
 * A MemoryStore whose writes fail once an entry has taken `failAfterBytes` (a full disk, say):
 * they throw, or with `later` reject on a later turn, as a network store's would.
 */
class FailingWrites implements CacheStore {
  readonly #inner = new MemoryStore({ maxEntryBytes: 32 * MiB, maxBytes: 64 * MiB })
  readonly #failAfterBytes: number
  readonly #later: boolean

  constructor(failAfterBytes: number, later = false) {
    this.#failAfterBytes = failAfterBytes
    this.#later = later
  }

  get(key: string): StoredEntry[] | Promise<StoredEntry[]> {
    return this.#inner.get(key)
  }

  put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined {
    const writer = this.#inner.put(key, meta, expectedSizeBytes)
    if (!writer) return undefined
    let writtenBytes = 0
    return {
      write: (chunk) => {
        writtenBytes += chunk.length
        const full = writtenBytes > this.#failAfterBytes
        if (!this.#later) {
          if (full) throw new Error('ENOSPC: no space left on device')
          return writer.write(chunk)
        }
        return new Promise<void>((resolve, reject) =>
          setImmediate(() =>
            full ? reject(new Error('ENOSPC: no space left on device')) : resolve(writer.write(chunk)),
          ),
        )
      },
      commit: () => writer.commit(),
      abort: () => writer.abort(),
    }
  }

  update(key: string, id: StoredEntry['id'], meta: EntryMeta) {
    return this.#inner.update(key, id, meta)
  }

  delete(key: string) {
    return this.#inner.delete(key)
  }

  close() {
    return this.#inner.close()
  }
}

/** Writes `body` only as fast as the client reads it. */
function sendPaced(res: http.ServerResponse, body: Buffer): void {
  let offset = 0
  const write = () => {
    while (offset < body.length) {
      const piece = body.subarray(offset, offset + 64 * KiB)
      offset += piece.length
      if (!res.write(piece)) return void res.once('drain', write)
    }
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

/** ETags per path prefix; `/changed-…` answers a second request with a new representation. */
function etagFor(url: string, seen: number): string {
  if (url.startsWith('/weak-')) return 'W/"v1"'
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
    const headers = { 'cache-control': 'max-age=60', etag, 'content-length': String(BIG.length - fromByte) }
    if (honoursRange) {
      const contentRange = `bytes ${fromByte}-${BIG.length - 1}/${BIG.length}`
      res.writeHead(206, { ...headers, 'content-range': contentRange })
    } else res.writeHead(200, headers)
    if (url.startsWith('/slow-')) return void sendSlowly(res, BIG)
    // the first request answers after a pause, so a second one sent meanwhile is fed it as it arrives
    setTimeout(() => sendPaced(res, BIG.subarray(fromByte)), req.headers.range ? 0 : 150)
  })
})
after(() => origin.close())

const ranges = (path: string) =>
  origin.requests.filter((r) => r.url === path).map((r) => [r.headers.range, r.headers['if-range']])

describe('a shared download the store keeps no copy of', () => {
  test('a waiter, after the write failed mid-body: a Range request with If-Range', async () => {
    const cache = makeAgent(new FailingWrites(2 * MiB))
    const first = readAll(cache.agent, `${origin.url}/write-fails`)
    await sleep(20)
    const waiter = stoppingCaller(cache.agent, `${origin.url}/write-fails`, 'pause')
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
    const first = readAll(cache.agent, `${origin.url}/evicted`)
    await sleep(20)
    const waiter = stoppingCaller(cache.agent, `${origin.url}/evicted`, 'pause')
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

  test('an origin that ignores Range: its 200 with the same strong ETag, minus the bytes already read', async () => {
    const cache = makeAgent(new FailingWrites(2 * MiB))
    const first = readAll(cache.agent, `${origin.url}/no-ranges-x`)
    await sleep(20)
    const waiter = stoppingCaller(cache.agent, `${origin.url}/no-ranges-x`, 'pause')
    await within(5000, 'first caller', first)
    waiter.resume()
    assert.equal(sha(await finalBody(waiter, 'waiter')), sha(BIG))
    assert.equal(origin.count('/no-ranges-x'), 2)
    await cache.close()
  })

  for (const [path, why] of [
    ['/weak-etag', 'a weak ETag'],
    ['/changed-etag', 'a representation that changed meanwhile'],
  ]) {
    test(`${why}: the reader gets an error, never a short or spliced body`, async () => {
      const cache = makeAgent(new FailingWrites(2 * MiB))
      const first = readAll(cache.agent, `${origin.url}${path}`)
      await sleep(20)
      const waiter = stoppingCaller(cache.agent, `${origin.url}${path}`, 'pause')
      assert.equal(sha((await within(5000, 'first caller', first)).body), sha(BIG))
      waiter.resume()
      const read = await within(5000, 'waiter', waiter.done)
      assert.equal(read.body, undefined)
      assert.match(String(read.error?.message), /rest of a shared response/)
      assert.equal(origin.count(path), path === '/weak-etag' ? 1 : 2)
      await cache.close()
    })
  }

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
