/**
 * A caller whose onResponseError throws, told of an error the cache met on a request of its own (the
 * rest of a hit's body asked of the origin), or of its own abort() while a revalidation that could
 * fall back on stale-if-error is at the origin: as from undici, no uncaught exception, and a throw on
 * the caller's own abort() reaches it.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Dispatcher } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { VanishingBodies } from '../helpers/async-store.js'
import { sleep } from '../helpers/client.js'
import { type Origin, startOrigin, twoMinutesAgo } from '../helpers/origin.js'

const BODY = Buffer.alloc(4 * 1024 * 1024, 'a')

let origin: Origin
before(async () => {
  origin = await startOrigin((req, res) => {
    if (req.url === '/reset-rest') {
      // the rest asked for with a Range never comes: the connection is cut
      if (req.headers.range) return void req.socket.destroy()
      res.writeHead(200, { etag: '"s"', 'cache-control': 'max-age=600', 'content-length': BODY.length })
      return void res.end(BODY)
    }
    // /reset-revalidation: stored first; its revalidation's connection is cut after 300 ms
    if (req.url === '/reset-revalidation') {
      if (origin.count(req.url) > 1) return void setTimeout(() => req.socket.destroy(), 300)
      // stale on arrival, revalidated for several requests at once (see twoMinutesAgo)
      res.writeHead(200, {
        etag: '"r"',
        'cache-control': 'max-age=60, stale-if-error=600',
        date: twoMinutesAgo(),
        'content-length': 5,
      })
      return void res.end('hello')
    }
    // /slow-revalidation: stored first, then revalidated slowly (stale at once, stale-if-error allowed)
    const first = origin.count(req.url) === 1
    setTimeout(
      () => {
        if (res.destroyed) return
        res.writeHead(200, {
          etag: '"a"',
          'cache-control': 'max-age=0, stale-if-error=60',
          'content-length': 5,
        })
        res.end('hello')
      },
      first ? 0 : 500,
    )
  })
})
after(() => origin.close())

const uncaught: Error[] = []
const record = (error: Error) => uncaught.push(error)
before(() => process.on('uncaughtException', record))
after(() => process.off('uncaughtException', record))

function get(agent: Dispatcher, path: string, handler: Partial<Dispatcher.DispatchHandler> = {}) {
  return new Promise<string>((resolve) => {
    agent.dispatch(
      { origin: origin.url, path, method: 'GET' },
      {
        onRequestStart() {},
        onResponseEnd: () => resolve('end'),
        ...handler,
        onResponseError: (controller, error) => {
          resolve(`error: ${error.message}`)
          handler.onResponseError?.(controller, error)
        },
      },
    )
  })
}

test("a hit whose body's rest the origin fails to send: the throw from onResponseError is no uncaught exception", async () => {
  const agent = new CacheAgent({ store: new VanishingBodies(1024 * 1024, 64 * 1024) })
  assert.equal(await get(agent, '/reset-rest'), 'end')
  const outcome = await get(agent, '/reset-rest', {
    onResponseError: () => {
      throw new Error('thrown by the caller')
    },
  })
  assert.equal(outcome, 'error: other side closed')
  await sleep(100)
  assert.deepEqual(
    uncaught.map((error) => error.message),
    [],
  )
  assert.deepEqual(
    origin.requests.filter((seen) => seen.url === '/reset-rest').map((seen) => seen.headers.range),
    [undefined, 'bytes=1048576-'],
  )
  await agent.close()
})

test('a caller that aborts while a revalidation that may serve stale-if-error is at the origin is told within its abort(), and nothing is looked up', async () => {
  const store = new MemoryStore()
  let lookups = 0
  const inner = store.get.bind(store)
  store.get = (key: string) => {
    lookups += 1
    return inner(key)
  }
  const agent = new CacheAgent({ store })
  assert.equal(await get(agent, '/slow-revalidation'), 'end')
  const told: string[] = []
  let inAbort = false
  await new Promise<void>((resolve) => {
    agent.dispatch(
      { origin: origin.url, path: '/slow-revalidation', method: 'GET' },
      {
        onRequestStart(controller) {
          setTimeout(() => {
            const lookupsBefore = lookups
            inAbort = true
            try {
              controller.abort(new Error('mine'))
            } catch (error) {
              told.push(`abort() threw: ${(error as Error).message}`)
            }
            inAbort = false
            setTimeout(() => {
              told.push(`lookups after the abort: ${lookups - lookupsBefore}`)
              resolve()
            }, 50)
          }, 100)
        },
        onResponseStart: () => told.push('onResponseStart'),
        onResponseError: (_controller, error) => {
          told.push(`onResponseError(${error.message}) ${inAbort ? 'inside' : 'after'} abort()`)
          throw new Error('thrown by the caller')
        },
      },
    )
  })
  assert.deepEqual(told, [
    'onResponseError(mine) inside abort()',
    'abort() threw: thrown by the caller',
    'lookups after the abort: 0',
  ])
  assert.deepEqual(uncaught, [])
  await agent.close()
})

test('a caller that leaves a revalidation to requests waiting on it: they are still served stale-if-error when it fails', async () => {
  const agent = new CacheAgent({ store: new MemoryStore() })
  assert.equal(await get(agent, '/reset-revalidation'), 'end')
  const statuses: string[] = []
  const served = (path: string, abortAfterMs?: number) =>
    get(agent, path, {
      onRequestStart: (controller) => {
        if (abortAfterMs !== undefined)
          setTimeout(() => controller.abort(new Error('caller left')), abortAfterMs)
      },
      onResponseStart: (_controller, statusCode, headers) => {
        statuses.push(`${statusCode} ${headers['cache-status']}`)
      },
    })
  const caller = served('/reset-revalidation', 100)
  await sleep(10)
  const waiters = [served('/reset-revalidation'), served('/reset-revalidation')]
  assert.equal(await caller, 'error: caller left')
  assert.deepEqual(await Promise.all(waiters), ['end', 'end'])
  const stale = '200 undici-cache; fwd=stale; collapsed; detail=stale-if-error-und_err_socket'
  assert.deepEqual(statuses, [stale, stale])
  assert.equal(origin.count('/reset-revalidation'), 2)
  await agent.close()
})
