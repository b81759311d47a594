/**
 * What undici 8's fetch() reads besides the headers object handed to onResponseStart:
 * - `controller.rawHeaders`: the response's fields, as lines (so do its request() and stream() with
 *   `responseHeaders: 'raw'`). Whatever path a response takes through the cache, the lines must list
 *   exactly the fields the caller is handed, Cache-Status and Age included.
 * - `onResponseStarted()`, for its response timing: undici calls it only on the cache's own handler.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Agent, type Dispatcher } from 'undici'
import { cacheInterceptor } from '../../lib/interceptor.js'
import type { CacheStore } from '../../lib/stores/store.js'
import { makeAgent, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

type Pair = [string, string]

interface Seen {
  statusCode: number
  /** The fields of the headers object, one pair per value. */
  fields: Pair[]
  /** `controller.rawHeaders` as read in onResponseStart, one pair per line. */
  lines: Pair[] | null
  /** onResponseStarted was called, once, before onResponseStart (undici 8's fetch() times responses by it). */
  startedFirst: boolean
  body: string
}

function fieldPairs(headers: Record<string, string | string[] | undefined>): Pair[] {
  return Object.entries(headers).flatMap(([name, value]) =>
    (Array.isArray(value) ? value : value === undefined ? [] : [value]).map((one): Pair => [name, one]),
  )
}

function linePairs(raw: unknown): Pair[] | null {
  if (!Array.isArray(raw)) return null
  const pairs: Pair[] = []
  for (let index = 0; index < raw.length; index += 2) {
    pairs.push([String(raw[index]).toLowerCase(), Buffer.from(raw[index + 1]).toString('latin1')])
  }
  return pairs
}

/** One request through `dispatcher` with a new-API handler that reads `controller.rawHeaders`. */
function dispatchOnce(
  dispatcher: Dispatcher,
  url: string,
  options: { method?: string; headers?: Record<string, string>; cache?: object } = {},
): Promise<Seen> {
  const { origin, pathname } = new URL(url)
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let seen: Omit<Seen, 'body'> | undefined
    let startedCalls = 0
    dispatcher.dispatch(
      { origin, path: pathname, method: (options.method ?? 'GET') as Dispatcher.HttpMethod, ...options },
      {
        onRequestStart() {},
        onResponseStarted() {
          startedCalls++
        },
        onResponseStart(controller, statusCode, headers) {
          const startedFirst = startedCalls === 1
          seen = {
            statusCode,
            fields: fieldPairs(headers),
            lines: linePairs(controller.rawHeaders),
            startedFirst,
          }
        },
        onResponseData(_controller, chunk) {
          chunks.push(chunk)
        },
        onResponseEnd() {
          if (seen) resolve({ ...seen, body: Buffer.concat(chunks).toString() })
        },
        onResponseError(_controller, error) {
          reject(error)
        },
      },
    )
  })
}

function assertLinesMatch(seen: Seen, cacheStatus: RegExp): void {
  assert.ok(seen.startedFirst, 'onResponseStarted once, before onResponseStart')
  assert.deepEqual(seen.lines, seen.fields)
  const statusLines = (seen.lines ?? []).filter(([name]) => name === 'cache-status')
  assert.equal(statusLines.length, 1)
  assert.match(statusLines[0]?.[1] ?? '', cacheStatus)
}

let origin: Origin

before(async () => {
  origin = await startOrigin((req, res) => {
    const headers = {
      'cache-control': req.url === '/revalidated' ? 'no-cache' : 'max-age=60',
      etag: '"v1"',
      'set-cookie-like': ['a=1', 'b=2'],
    }
    if (req.headers['if-none-match'] === headers.etag) return reply(res, 304, headers)
    // a slow answer, so that a second request waits on the first
    const delayMs = req.url === '/slow' ? 100 : 0
    setTimeout(() => reply(res, 200, headers, `${req.method} ${req.url}`), delayMs)
  })
})
after(() => origin.close())

const dispatchers: {
  name: string
  make: (store: CacheStore) => { dispatcher: Dispatcher; close: () => Promise<void> }
}[] = [
  {
    name: 'CacheAgent',
    make: (store) => {
      const cache = makeAgent(store)
      return { dispatcher: cache.agent, close: cache.close }
    },
  },
  {
    name: 'cacheInterceptor() on an Agent',
    make: (store) => {
      const agent = new Agent()
      return {
        dispatcher: agent.compose(cacheInterceptor({ store })),
        close: async () => {
          await agent.close()
          await store.close()
        },
      }
    },
  },
]

for (const kind of storeKinds) {
  for (const { name, make } of dispatchers) {
    describe(`controller.rawHeaders list the fields handed on (${name}, ${kind.name})`, () => {
      test('a miss, then a hit', async () => {
        const { dispatcher, close } = make(kind.make())
        const url = `${origin.url}/fresh-${name.length}`
        assertLinesMatch(await dispatchOnce(dispatcher, url), /^undici-cache; fwd=miss; stored$/)
        const hit = await dispatchOnce(dispatcher, url)
        assertLinesMatch(hit, /^undici-cache; hit; ttl=(58|59|60)$/)
        assert.ok(hit.lines?.some(([field]) => field === 'age'))
        assert.deepEqual(
          hit.lines?.filter(([field]) => field === 'set-cookie-like'),
          [
            ['set-cookie-like', 'a=1'],
            ['set-cookie-like', 'b=2'],
          ],
        )
        await close()
      })

      test('a 304 served from the store', async () => {
        const { dispatcher, close } = make(kind.make())
        const url = `${origin.url}/revalidated`
        await dispatchOnce(dispatcher, url)
        const revalidated = await dispatchOnce(dispatcher, url)
        assert.equal(revalidated.statusCode, 200)
        assert.equal(revalidated.body, 'GET /revalidated')
        assertLinesMatch(revalidated, /^undici-cache; fwd=stale; fwd-status=304$/)
        await close()
      })

      test('a bypassed request and an unsafe method', async () => {
        const { dispatcher, close } = make(kind.make())
        const bypassed = await dispatchOnce(dispatcher, `${origin.url}/bypassed`, { cache: { bypass: true } })
        assertLinesMatch(bypassed, /^undici-cache; fwd=bypass$/)
        const posted = await dispatchOnce(dispatcher, `${origin.url}/posted`, { method: 'POST' })
        assert.equal(posted.body, 'POST /posted')
        assertLinesMatch(posted, /^undici-cache; fwd=method$/)
        await close()
      })

      test('a request that waited on an identical one', async () => {
        const { dispatcher, close } = make(kind.make())
        const url = `${origin.url}/slow`
        const before = origin.count('/slow')
        const [first, waiter] = await Promise.all([
          dispatchOnce(dispatcher, url),
          dispatchOnce(dispatcher, url),
        ])
        assert.equal(origin.count('/slow') - before, 1)
        // the first caller's response is shared from the start, so it says collapsed too
        assertLinesMatch(first, /^undici-cache; fwd=miss; stored; collapsed$/)
        assertLinesMatch(waiter, /^undici-cache; fwd=miss; collapsed$/)
        await close()
      })
    })
  }
}

test('lines another interceptor writes are the ones read back', async () => {
  const { dispatcher, close } = dispatchers[0]?.make(storeKinds[0]?.make() as CacheStore) ?? assert.fail()
  const rewriting: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) =>
    dispatch(opts, {
      ...handler,
      onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
      onResponseStart: (controller, statusCode, _headers, statusMessage) => {
        controller.rawHeaders = [Buffer.from('x-only'), Buffer.from('this')]
        handler.onResponseStart?.(controller, statusCode, { 'x-only': 'this' }, statusMessage)
      },
      onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
      onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
      onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
    })
  const seen = await dispatchOnce(dispatcher.compose(rewriting), `${origin.url}/rewritten`)
  assert.deepEqual(seen.lines, [['x-only', 'this']])
  await close()
})
