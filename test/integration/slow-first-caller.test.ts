import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import type http from 'node:http'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { Agent, type Dispatcher } from 'undici'
import { MAX_RELEASES } from '../../lib/flights.js'
import { HOLD_GRACE_MS } from '../../lib/handlers/download-pace.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { finalBody, readAll, stoppingCaller, within } from '../helpers/caller.js'
import { makeAgent, sleep, tempDir } from '../helpers/client.js'
import { type Origin, startOrigin } from '../helpers/origin.js'

// A response with neither Content-Length nor ETag: the store may still refuse it as too large and the
// origin cannot resend its rest, so a first caller that stops reading cannot fall behind.
const KiB = 1024
const BODY = Buffer.from(Array.from({ length: 4096 * KiB }, (_, i) => (i * 7) % 253))
const sha = (buffer: Buffer) => createHash('sha256').update(buffer).digest('hex')

/** Sends BODY in 16 KiB writes, resting 5 ms after every 256 KiB, at the pace the client reads. */
function sendInBursts(res: http.ServerResponse): void {
  let offset = 0
  const write = () => {
    while (offset < BODY.length) {
      const piece = BODY.subarray(offset, offset + 16 * KiB)
      offset += piece.length
      if (!res.write(piece)) return void res.once('drain', write)
      if (offset % (256 * KiB) === 0) return void setTimeout(write, 5)
    }
    res.end()
  }
  write()
}

let origin: Origin
before(async () => {
  origin = await startOrigin((req, res) => {
    // /late-… answers after a pause, so requests sent meanwhile are fed the response as it arrives
    setTimeout(
      () => {
        res.writeHead(200, { 'cache-control': 'max-age=60' })
        sendInBursts(res)
      },
      req.url?.startsWith('/late-') ? 150 : 0,
    )
  })
})
after(() => origin.close())

const stores = [
  { name: 'SqliteStore', make: () => new SqliteStore({ path: path.join(tempDir(), 's.db') }) },
  { name: 'MemoryStore', make: () => new MemoryStore({ maxEntryBytes: 16 * 1024 * KiB }) },
]

for (const kind of stores) {
  describe(`a first caller that only reads slowly holds nobody up (${kind.name})`, () => {
    const pathOf = (name: string) => `/${name}-${kind.name}`

    test('concurrent global fetch() calls for a chunked body without ETag make one origin request', async (t) => {
      // a reader that falls 100 ms behind lets the others go (HOLD_GRACE_MS): a busy machine (the test
      // files beside this one, under coverage) can stall fetch() that long, so up to 3 tries, each fresh
      const counts: number[] = []
      for (let attempt = 1; attempt <= 3 && counts.at(-1) !== 1; attempt++) {
        const cache = makeAgent(kind.make())
        const path = `${pathOf('herd')}-${attempt}`
        const fetchOne = async (delayMs: number) => {
          await sleep(delayMs)
          const response = await globalThis.fetch(`${origin.url}${path}`, {
            dispatcher: cache.agent,
          } as RequestInit)
          return {
            status: response.headers.get('cache-status'),
            body: Buffer.from(await response.arrayBuffer()),
          }
        }
        // the later ones arrive while the body streams: they wait for the entry
        const answers = await within(10_000, 'fetches', Promise.all([0, 20, 40, 60].map(fetchOne)))
        for (const answer of answers) assert.equal(sha(answer.body), sha(BODY))
        counts.push(origin.count(path))
        if (counts.at(-1) === 1) {
          for (const answer of answers.slice(1)) {
            assert.match(String(answer.status), /^undici-cache; (fwd=miss; collapsed|hit; ttl=\d+)$/)
          }
        }
        await cache.close()
      }
      t.diagnostic(`origin requests per try: ${counts.join(', ')}`)
      assert.equal(counts.at(-1), 1)
    })

    test(`a first caller stopped for less than ${HOLD_GRACE_MS} ms keeps the requests that arrived meanwhile waiting for its entry`, async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}${pathOf('short-stop')}`
      const leader = stoppingCaller(cache.agent, url, 'pause')
      await leader.stopped
      const waiter = readAll(cache.agent, url)
      await sleep(HOLD_GRACE_MS / 4)
      leader.resume()
      assert.equal(sha(await finalBody(leader, 'first caller')), sha(BODY))
      const read = await within(5000, 'waiter', waiter)
      assert.equal(sha(read.body), sha(BODY))
      assert.equal(read.status, 'undici-cache; fwd=miss; collapsed')
      assert.equal(origin.count(pathOf('short-stop')), 1)
      await cache.close()
    })

    test(`a first caller stopped for longer lets the requests waiting for its entry go their own way after ${HOLD_GRACE_MS} ms`, async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}${pathOf('long-stop')}`
      const leader = stoppingCaller(cache.agent, url, 'pause')
      await leader.stopped
      const sentMs = Date.now()
      const read = await within(5000, 'waiter', readAll(cache.agent, url))
      const waitedMs = Date.now() - sentMs
      assert.equal(sha(read.body), sha(BODY))
      assert.equal(read.status, 'undici-cache; fwd=miss; stored')
      assert.ok(waitedMs >= HOLD_GRACE_MS - 5, `went its own way after ${waitedMs} ms`)
      assert.ok(leader.receivedBytes() < BODY.length, 'the first caller was still stopped')
      leader.resume()
      assert.equal(sha(await finalBody(leader, 'first caller')), sha(BODY))
      assert.equal(origin.count(pathOf('long-stop')), 2)
      await cache.close()
    })

    test('the requests let go after a first caller held the download share one origin request', async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}${pathOf('let-go')}`
      const leader = stoppingCaller(cache.agent, url, 'pause')
      await leader.stopped
      const reads = []
      for (let index = 0; index < 10; index++) {
        reads.push(readAll(cache.agent, url))
        await sleep(5)
      }
      const answers = await within(5000, 'requests let go', Promise.all(reads))
      for (const answer of answers) assert.equal(sha(answer.body), sha(BODY))
      // one of them leads the new flight; the others wait on it (or, if slow to arrive, find its entry)
      const leading = answers.filter(
        (answer) => answer.status === 'undici-cache; fwd=miss; stored; collapsed',
      )
      assert.equal(leading.length, 1)
      for (const answer of answers.filter((each) => !leading.includes(each))) {
        assert.match(String(answer.status), /^undici-cache; (fwd=miss; collapsed|hit; ttl=\d+)$/)
      }
      leader.resume()
      assert.equal(sha(await finalBody(leader, 'first caller')), sha(BODY))
      assert.equal(origin.count(pathOf('let-go')), 2)
      await cache.close()
    })

    test('requests let go by a held download are not held again by the next stopped caller: they wait for its entry, then go again', async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}${pathOf('held-twice')}`
      const leader = stoppingCaller(cache.agent, url, 'pause')
      await leader.stopped
      // let go first, it leads the next request, and stops reading too
      const next = stoppingCaller(cache.agent, url, 'pause')
      await sleep(5)
      const plain = [0, 1, 2, 3].map(() => readAll(cache.agent, url))
      const answers = await within(5000, 'plain requests', Promise.all(plain))
      for (const answer of answers) assert.equal(sha(answer.body), sha(BODY))
      // let go twice, they share a third request
      const statuses = answers.map((answer) => answer.status)
      assert.equal(
        statuses.filter((status) => status === 'undici-cache; fwd=miss; stored; collapsed').length,
        1,
      )
      assert.equal(statuses.filter((status) => status === 'undici-cache; fwd=miss; collapsed').length, 3)
      assert.ok(
        leader.receivedBytes() < BODY.length && next.receivedBytes() < BODY.length,
        'both still stopped',
      )
      assert.equal(origin.count(pathOf('held-twice')), 3)
      leader.resume()
      next.resume()
      assert.equal(sha(await finalBody(leader, 'first caller')), sha(BODY))
      assert.equal(sha(await finalBody(next, 'next caller')), sha(BODY))
      await cache.close()
    })

    test(`requests let go by ${MAX_RELEASES} held downloads in a row each send their own`, async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}${pathOf('held-thrice')}`
      const leader = stoppingCaller(cache.agent, url, 'pause')
      await leader.stopped
      // each let go first, leads the next request and stops reading
      const stoppers = []
      for (let index = 1; index < MAX_RELEASES; index++) {
        stoppers.push(stoppingCaller(cache.agent, url, 'pause'))
        await sleep(5)
      }
      const lastTwo = [readAll(cache.agent, url), readAll(cache.agent, url)]
      for (const last of await within(5000, 'last requests', Promise.all(lastTwo))) {
        assert.equal(sha(last.body), sha(BODY))
        assert.equal(last.status, 'undici-cache; fwd=miss; stored')
      }
      assert.equal(origin.count(pathOf('held-thrice')), MAX_RELEASES + 2)
      for (const caller of [leader, ...stoppers]) caller.resume()
      for (const caller of [leader, ...stoppers])
        assert.equal(sha(await finalBody(caller, 'stopped caller')), sha(BODY))
      await cache.close()
    })

    test('a first caller that reads far slower than the origin sends keeps at most about 1 MiB unread, and the requests waiting for its entry go their own way', async () => {
      // counts what reaches the cache from the origin for the first request only
      let firstDispatch = true
      let fromOriginBytes = 0
      const counting: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) => {
        const counted = firstDispatch
        firstDispatch = false
        return dispatch(opts, {
          onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
          onResponseStart: (controller, status, headers, message) =>
            handler.onResponseStart?.(controller, status, headers, message),
          onResponseData: (controller, chunk) => {
            if (counted) fromOriginBytes += chunk.length
            handler.onResponseData?.(controller, chunk)
          },
          onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
          onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
        })
      }
      const cache = makeAgent(kind.make(), { agent: new Agent().compose(counting) })
      const url = new URL(`${origin.url}${pathOf('trickle')}`)
      let deliveredBytes = 0
      let trickling: Dispatcher.DispatchController | undefined
      cache.agent.dispatch({ origin: url.origin, path: url.pathname, method: 'GET', headers: {} }, {
        onRequestStart() {},
        onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer) {
          trickling = controller
          deliveredBytes += chunk.length
          controller.pause()
          setTimeout(() => controller.resume(), 20)
        },
        onResponseError() {},
      } as Dispatcher.DispatchHandler)
      while (deliveredBytes === 0) await sleep(5)
      const waiter = await within(5000, 'waiter', readAll(cache.agent, url.href))
      assert.equal(sha(waiter.body), sha(BODY))
      assert.equal(waiter.status, 'undici-cache; fwd=miss; stored')
      await sleep(500)
      assert.ok(deliveredBytes < BODY.length / 2, `the first caller read ${deliveredBytes} bytes`)
      const unreadBytes = fromOriginBytes - deliveredBytes
      assert.ok(
        unreadBytes <= 1024 * KiB + 256 * KiB,
        `${unreadBytes} bytes taken from the origin and not read`,
      )
      assert.equal(origin.count(pathOf('trickle')), 2)
      trickling?.abort(new Error('enough'))
      await cache.close()
    })

    test('a first caller that aborts while it holds the download leaves it to the others: one origin request', async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}${pathOf('late-abort')}`
      const leader = stoppingCaller(cache.agent, url, 'pause')
      await sleep(20)
      const live = readAll(cache.agent, url)
      await leader.stopped
      const forEntry = readAll(cache.agent, url)
      await sleep(HOLD_GRACE_MS / 4)
      leader.abort()
      assert.equal((await within(5000, 'first caller', leader.done)).error?.message, 'caller gave up')
      const [fedLive, fromEntry] = await within(5000, 'the others', Promise.all([live, forEntry]))
      assert.equal(sha(fedLive.body), sha(BODY))
      assert.equal(sha(fromEntry.body), sha(BODY))
      assert.equal(fedLive.status, 'undici-cache; fwd=miss; collapsed')
      assert.equal(fromEntry.status, 'undici-cache; fwd=miss; collapsed')
      assert.equal(origin.count(pathOf('late-abort')), 1)
      await within(5000, 'close()', cache.close())
    })
  })
}
