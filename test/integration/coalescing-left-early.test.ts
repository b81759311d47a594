/**
 * Request coalescing when the first caller leaves early (aborts): what its waiters are served, and when
 * the download or the request stops.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { test } from 'node:test'
import { type Dispatcher, request } from 'undici'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { EntryMeta, EntryWriter } from '../../lib/stores/store.js'
import { makeAgent, send, sleep } from '../helpers/client.js'
import { reply, startOrigin, twoMinutesAgo } from '../helpers/origin.js'
import { firstCallerLeaves } from './coalescing-callers.js'

/** A response stale on arrival that may be revalidated for several requests at once (see twoMinutesAgo). */
function staleOnArrival(cacheControl: string): Record<string, string> {
  return { 'cache-control': cacheControl, date: twoMinutesAgo() }
}

/** A MemoryStore whose writes fail once an entry has taken `failAfterBytes` (a full disk, say). */
class FailingAfter extends MemoryStore {
  readonly #failAfterBytes: number

  constructor(failAfterBytes: number) {
    super()
    this.#failAfterBytes = failAfterBytes
  }

  override put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined {
    const writer = super.put(key, meta, expectedSizeBytes)
    if (!writer) return undefined
    let writtenBytes = 0
    return {
      write: (chunk) => {
        writtenBytes += chunk.length
        if (writtenBytes > this.#failAfterBytes)
          return Promise.reject(new Error('ENOSPC: no space left on device'))
        return writer.write(chunk)
      },
      commit: () => writer.commit(),
      abort: () => writer.abort(),
    }
  }
}

test('when the first caller and a waiter that joined after the response started both abort, the download stops', async () => {
  let closedEarly = false
  const slow = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(64 * 1024 * 30) })
    let sent = 0
    const timer = setInterval(() => {
      res.write(Buffer.alloc(64 * 1024))
      if (++sent === 30) {
        clearInterval(timer)
        res.end()
      }
    }, 100)
    res.on('close', () => {
      clearInterval(timer)
      closedEarly = !res.writableFinished
    })
  })
  const cache = makeAgent(new MemoryStore())
  const leaderAbort = new AbortController()
  const waiterAbort = new AbortController()
  const leader = await request(`${slow.url}/slow`, { dispatcher: cache.agent, signal: leaderAbort.signal })
  const waiter = request(`${slow.url}/slow`, { dispatcher: cache.agent, signal: waiterAbort.signal })
  const reading = leader.body.resume()
  leaderAbort.abort()
  await assert.rejects(once(reading, 'end'))
  waiterAbort.abort()
  await assert.rejects(waiter)
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal(closedEarly, true, 'the origin connection was closed before the body was sent')
  assert.equal(slow.count('/slow'), 1)
  await cache.close()
  await slow.close()
})

test('a first caller that left early: a response not stored is not read for nobody; its waiters send their own', async () => {
  const closedEarly: boolean[] = []
  const slow = await startOrigin((_req, res) => {
    const index = closedEarly.push(false) - 1
    res.on('close', () => {
      closedEarly[index] = !res.writableFinished
    })
    setTimeout(() => {
      res.writeHead(200, { 'cache-control': 'private, max-age=60', 'content-length': '8' })
      res.write('priv')
      setTimeout(() => res.end('ate!'), 200)
    }, 100)
  })
  const cache = makeAgent(new MemoryStore())
  const url = `${slow.url}/p`
  const { replies } = await firstCallerLeaves(cache.agent, url, () => [
    send(cache.agent, url),
    send(cache.agent, url),
  ])
  for (const waiter of await replies) {
    assert.equal(waiter.body, 'private!')
    assert.equal(waiter.headers['cache-status'], 'undici-cache; fwd=miss; detail=private')
  }
  assert.equal(slow.count('/p'), 3)
  assert.deepEqual(closedEarly, [true, false, false], 'the first download stopped at its headers')
  await cache.close()
  await slow.close()
})

test('a revalidating first caller that left early: a 5xx within stale-if-error serves its waiters, not it', async () => {
  let failing = false
  const slow = await startOrigin((_req, res) => {
    if (!failing)
      return reply(res, 200, { ...staleOnArrival('max-age=60, stale-if-error=600'), etag: '"s"' }, 'stale')
    setTimeout(() => reply(res, 503, {}, 'down'), 100)
  })
  const cache = makeAgent(new MemoryStore())
  await send(cache.agent, `${slow.url}/s`)
  failing = true
  // the first caller's handler records every call it gets: after its abort, nothing more
  const calls: string[] = []
  let abortLeader: (reason: Error) => void = () => {}
  cache.agent.dispatch(
    { origin: slow.url, path: '/s', method: 'GET' },
    {
      onRequestStart: (controller) => {
        abortLeader = (reason) => controller.abort(reason)
      },
      onResponseStart: (_controller, statusCode) => void calls.push(`start ${statusCode}`),
      onResponseData: () => void calls.push('data'),
      onResponseEnd: () => void calls.push('end'),
      onResponseError: (_controller, error) => void calls.push(`error ${error.message}`),
    },
  )
  await sleep(10)
  const waiters = [send(cache.agent, `${slow.url}/s`), send(cache.agent, `${slow.url}/s`)]
  await sleep(10)
  abortLeader(new Error('gave up'))
  for (const waiter of await Promise.all(waiters)) {
    assert.equal(waiter.status, 200)
    assert.equal(waiter.body, 'stale')
    assert.equal(
      waiter.headers['cache-status'],
      'undici-cache; fwd=stale; fwd-status=503; collapsed; detail=stale-if-error-503',
    )
  }
  await sleep(20)
  assert.deepEqual(calls, ['error gave up'])
  assert.equal(slow.count('/s'), 2, 'one conditional request, shared')
  await cache.close()
  await slow.close()
})

test('a revalidating first caller that left early: a 304 for another representation is asked for again once, for its waiters', async () => {
  let version = 'one'
  const slow = await startOrigin((req, res) => {
    const headers = { 'cache-control': 'max-age=60', etag: `"${version}"` }
    if (version === 'one') return reply(res, 200, { ...headers, ...staleOnArrival('max-age=60') }, version)
    // a 304 naming another ETag than the one asked about: the stored response is not the one it validates
    if (req.headers['if-none-match']) return setTimeout(() => reply(res, 304, { etag: '"other"' }), 100)
    setTimeout(() => reply(res, 200, headers, version), 100)
  })
  const cache = makeAgent(new MemoryStore())
  await send(cache.agent, `${slow.url}/m`)
  version = 'two'
  const url = `${slow.url}/m`
  const { replies } = await firstCallerLeaves(cache.agent, url, () => [
    send(cache.agent, url),
    send(cache.agent, url),
  ])
  for (const waiter of await replies) {
    assert.equal(waiter.body, 'two')
    assert.equal(waiter.headers['cache-status'], 'undici-cache; fwd=stale; collapsed')
  }
  assert.equal(slow.count('/m'), 3)
  await cache.close()
  await slow.close()
})

/** A raw handler that records each call; `onStart` runs in its onResponseStart, `onError` in its onResponseError. */
function recorder(
  hooks: { onStart?: (controller: Dispatcher.DispatchController) => void; onError?: () => void } = {},
) {
  const calls: string[] = []
  let controller: Dispatcher.DispatchController | undefined
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart: (started) => {
      controller = started
    },
    onResponseStart: (started, statusCode) => {
      calls.push(`start ${statusCode}`)
      hooks.onStart?.(started)
    },
    onResponseData: () => void calls.push('data'),
    onResponseEnd: () => void calls.push('end'),
    onResponseError: (_controller, error) => {
      calls.push(`error ${error.message}`)
      hooks.onError?.()
    },
  }
  return { handler, calls, controller: () => controller as Dispatcher.DispatchController }
}

test('a first caller that left early: when its one waiter fed live leaves as the response starts, the download stops', async () => {
  let closedEarly = false
  const endless = await startOrigin((_req, res) =>
    setTimeout(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60' })
      const timer = setInterval(() => res.write('x'.repeat(1024)), 20)
      res.on('close', () => {
        clearInterval(timer)
        closedEarly = !res.writableFinished
      })
    }, 100),
  )
  const cache = makeAgent(new MemoryStore())
  const leader = recorder()
  cache.agent.dispatch({ origin: endless.url, path: '/e', method: 'GET' }, leader.handler)
  await sleep(10)
  const waiter = recorder({ onStart: (controller) => controller.abort(new Error('waiter gave up')) })
  cache.agent.dispatch({ origin: endless.url, path: '/e', method: 'GET' }, waiter.handler)
  await sleep(10)
  leader.controller().abort(new Error('gave up'))
  await sleep(300)
  assert.deepEqual(leader.calls, ['error gave up'])
  assert.deepEqual(waiter.calls, ['start 200', 'error waiter gave up'])
  assert.equal(closedEarly, true, 'nobody reads the download: it stopped')
  const closingMs = performance.now()
  await cache.close()
  assert.ok(performance.now() - closingMs < 500, 'close() waits for no download')
  await endless.close()
})

test('a revalidating first caller that paused, then left: its waiters are served what the 304 validated', async () => {
  let requests = 0
  const slow = await startOrigin((_req, res) => {
    if (requests++ === 0) return reply(res, 200, { ...staleOnArrival('max-age=60'), etag: '"p"' }, 'body')
    setTimeout(() => reply(res, 304, { etag: '"p"' }), 100)
  })
  const cache = makeAgent(new MemoryStore())
  await send(cache.agent, `${slow.url}/p`)
  const leader = recorder()
  cache.agent.dispatch({ origin: slow.url, path: '/p', method: 'GET' }, leader.handler)
  await sleep(10)
  const waiter = send(cache.agent, `${slow.url}/p`)
  await sleep(10)
  leader.controller().pause()
  leader.controller().abort(new Error('gave up'))
  leader.controller().resume()
  leader.controller().pause()
  const served = await waiter
  assert.equal(served.body, 'body')
  assert.equal(served.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304; collapsed')
  assert.deepEqual(leader.calls, ['error gave up'])
  assert.equal(requests, 2)
  await cache.close()
  await slow.close()
})

test('a first caller that leaves early and whose onResponseError throws gets the throw from its abort(), as from undici', async () => {
  const slow = await startOrigin((_req, res) =>
    setTimeout(() => reply(res, 200, { 'cache-control': 'max-age=60' }, 'late'), 100),
  )
  const cache = makeAgent(new MemoryStore())
  const leader = recorder({
    onError: () => {
      throw new Error('handler threw')
    },
  })
  cache.agent.dispatch({ origin: slow.url, path: '/t', method: 'GET' }, leader.handler)
  await sleep(10)
  const waiter = send(cache.agent, `${slow.url}/t`)
  await sleep(10)
  assert.throws(() => leader.controller().abort(new Error('gave up')), { message: 'handler threw' })
  assert.equal((await waiter).body, 'late')
  assert.equal(slow.count('/t'), 1)
  await cache.close()
  await slow.close()
})

test('when the first caller leaves before the response starts and its one waiter leaves too, the request stops', async () => {
  let closedEarly = false
  const slow = await startOrigin((_req, res) => {
    const timer = setTimeout(() => reply(res, 200, { 'cache-control': 'max-age=60' }, 'late'), 400)
    res.on('close', () => {
      clearTimeout(timer)
      closedEarly = !res.writableFinished
    })
  })
  const cache = makeAgent(new MemoryStore())
  const leaderAbort = new AbortController()
  const waiterAbort = new AbortController()
  const leader = request(`${slow.url}/gone`, { dispatcher: cache.agent, signal: leaderAbort.signal })
  await sleep(10)
  const waiter = request(`${slow.url}/gone`, { dispatcher: cache.agent, signal: waiterAbort.signal })
  await sleep(10)
  leaderAbort.abort()
  await assert.rejects(leader)
  await sleep(50)
  assert.equal(closedEarly, false, 'the waiter still needs it')
  waiterAbort.abort()
  await assert.rejects(waiter)
  await sleep(100)
  assert.equal(closedEarly, true, 'the origin request was stopped before its answer')
  assert.equal(slow.count('/gone'), 1)
  await cache.close()
  await slow.close()
})

test('a download whose first caller left early stops when its store write fails and no waiter reads it live', async () => {
  let closedEarly = false
  const big = await startOrigin((req, res) => {
    if (req.headers.range)
      return reply(res, 206, { etag: '"a"', 'content-range': 'bytes 0-9/3932160' }, '0123456789')
    res.on('close', () => {
      closedEarly = !res.writableFinished
    })
    setTimeout(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60', etag: '"a"', 'content-length': String(3932160) })
      const step = (left: number) => {
        if (res.destroyed) return
        if (left === 0) return void res.end()
        res.write(Buffer.alloc(65536, 'x'))
        setTimeout(() => step(left - 1), 20)
      }
      step(60)
    }, 50)
  })
  const failing = new FailingAfter(128 * 1024)
  const cache = makeAgent(failing)
  const { replies } = await firstCallerLeaves(cache.agent, `${big.url}/big`, () => [
    send(cache.agent, `${big.url}/big`, { headers: { range: 'bytes=0-9' } }),
  ])
  assert.equal((await replies)[0]?.body, '0123456789')
  const closingMs = performance.now()
  await cache.close()
  assert.ok(performance.now() - closingMs < 500, 'close() does not wait for a download nobody reads')
  assert.equal(closedEarly, true, 'the first download was stopped')
  await big.close()
})
