/**
 * A response the store gives up on as too large (no Content-Length) and without a strong ETag can be read
 * only live or asked for whole again: a waiter fed it that reads slower than the others, or pauses a
 * while, holds the download (WAITER_HOLD_MS at a time at most) rather than falling behind at once.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { type Dispatcher, request } from 'undici'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { stoppingCaller, within } from '../helpers/caller.js'
import { makeAgent, sleep } from '../helpers/client.js'
import { type Origin, startOrigin } from '../helpers/origin.js'

const MiB = 1024 * 1024
const BODY = Buffer.from(Array.from({ length: 6 * MiB + 3 }, (_, i) => (i * 7) % 251))

let origin: Origin
before(async () => {
  origin = await startOrigin((req, res) => {
    if (req.url === '/failing') {
      // fails mid-body, its headers after 100 ms
      return void setTimeout(() => {
        res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(BODY.length) })
        res.write(BODY.subarray(0, 512 * 1024))
        setTimeout(() => res.destroy(), 100)
      }, 100)
    }
    let offset = 0
    const step = () => {
      if (offset >= BODY.length) return void res.end()
      const chunk = BODY.subarray(offset, offset + 64 * 1024)
      offset += chunk.length
      const more = res.write(chunk)
      if (more) setImmediate(step)
      else res.once('drain', step)
    }
    // answered after 100 ms: the second request, sent 5 ms after the first, waits on it and is fed live
    // /lm-now says it changed as it answers; /etag-later has a weak ETag from its second answer on
    const nth = origin.count(req.url)
    setTimeout(() => {
      if (req.url === '/lm-now') res.setHeader('last-modified', new Date().toUTCString())
      if (req.url === '/etag-later' && nth > 1) res.setHeader('etag', 'W/"later"')
      res.writeHead(200, { 'cache-control': 'max-age=60' }) // chunked, no ETag
      step()
    }, 100)
  })
})
after(() => origin.close())

/** Reads a response, waiting `delayMs` after each chunk, or `pauseMs` once after the first MiB. */
async function read(
  url: string,
  dispatcher: ReturnType<typeof makeAgent>['agent'],
  pace: { delayMs?: number; pauseMs?: number },
) {
  const response = await request(url, { dispatcher })
  const chunks: Buffer[] = []
  let bytes = 0
  let paused = false
  for await (const chunk of response.body) {
    chunks.push(chunk)
    bytes += chunk.length
    if (pace.delayMs) await sleep(pace.delayMs)
    if (pace.pauseMs && !paused && bytes > MiB) {
      paused = true
      await sleep(pace.pauseMs)
    }
  }
  return Buffer.concat(chunks)
}

test('a waiter reading slower than the first caller gets the whole body of a response the store refused', async () => {
  const cache = makeAgent(new MemoryStore({ maxEntryBytes: MiB }))
  const url = `${origin.url}/slow-reader`
  const [fast, slow] = await Promise.all([
    read(url, cache.agent, {}),
    (async () => {
      await sleep(5)
      return read(url, cache.agent, { delayMs: 1 })
    })(),
  ])
  assert.ok(fast.equals(BODY))
  assert.ok(slow.equals(BODY))
  assert.equal(origin.count('/slow-reader'), 1)
  await cache.close()
})

test('a waiter that pauses 300 ms gets the whole body of a response the store refused', async () => {
  const cache = makeAgent(new MemoryStore({ maxEntryBytes: MiB }))
  const url = `${origin.url}/pausing-reader`
  const [fast, paused] = await Promise.all([
    read(url, cache.agent, {}),
    (async () => {
      await sleep(5)
      return read(url, cache.agent, { pauseMs: 300 })
    })(),
  ])
  assert.ok(fast.equals(BODY))
  assert.ok(paused.equals(BODY))
  assert.equal(origin.count('/pausing-reader'), 1)
  await cache.close()
})

test('a waiter that stops reading for longer holds the others no more than a second, then gets its rest from the origin, checked', async () => {
  const cache = makeAgent(new MemoryStore({ maxEntryBytes: MiB }))
  const url = `${origin.url}/stopped-reader`
  const startedMs = performance.now()
  const [fast, stopped] = await Promise.all([
    read(url, cache.agent, {}).then((body) => ({ body, ms: performance.now() - startedMs })),
    (async () => {
      await sleep(5)
      return read(url, cache.agent, { pauseMs: 3000 })
    })(),
  ])
  assert.ok(fast.body.equals(BODY))
  assert.ok(fast.ms < 2500, `the first caller was held ${Math.round(fast.ms)} ms`)
  // no strong ETag: the whole body again, its first bytes hashing as those the waiter had
  assert.ok(stopped.equals(BODY))
  assert.equal(origin.count('/stopped-reader'), 2)
  const again = origin.requests.filter((seen) => seen.url === '/stopped-reader')[1]
  assert.equal(again?.headers.range, undefined)
  await cache.close()
})

test("a waiter's own bodyTimeout does not run out while the first caller holds the download (review helper 141)", async () => {
  const cache = makeAgent(new MemoryStore({ maxEntryBytes: MiB }))
  const url = `${origin.url}/held-waiter`
  const first = stoppingCaller(cache.agent, url, 'pause')
  await sleep(5)
  // held up to WAITER_HOLD_MS (1 s) by the first caller, not by the origin: then its rest, asked again
  const waiter = await request(url, { dispatcher: cache.agent, bodyTimeout: 400 })
  assert.ok(Buffer.from(await waiter.body.arrayBuffer()).equals(BODY))
  first.resume()
  assert.ok((await within(5000, 'the first caller', first.done)).body?.equals(BODY))
  assert.equal(origin.count('/held-waiter'), 2)
  await cache.close()
})

test('a waiter that leaves while it holds the download lets the first caller go on at once', async () => {
  const cache = makeAgent(new MemoryStore({ maxEntryBytes: MiB }))
  const url = `${origin.url}/leaving-reader`
  const first = read(url, cache.agent, {})
  await sleep(5)
  const waiter = await request(url, { dispatcher: cache.agent })
  waiter.body.pause() // holds the download once it has 1 MiB unread
  await sleep(400) // less than WAITER_HOLD_MS
  waiter.body.destroy()
  const startedMs = performance.now()
  const body = await Promise.race([first, sleep(5000).then(() => undefined)])
  assert.ok(body?.equals(BODY), 'the first caller got the whole body')
  assert.ok(performance.now() - startedMs < 1000, 'without waiting for the hold to run out')
  assert.equal(origin.count('/leaving-reader'), 1)
  await cache.agent.destroy()
  await cache.store.close()
})

test("a waiter whose onResponseError throws leaves the others' errors to them (a shared download that fails)", async () => {
  const cache = makeAgent(new MemoryStore())
  const url = `${origin.url}/failing`
  const outcome = (promise: Promise<unknown>) =>
    Promise.race([
      promise.then(
        () => 'complete',
        (error: { code?: string }) => `error ${error.code}`,
      ),
      sleep(4000).then(() => 'still waiting after 4 s'),
    ])
  const first = outcome(
    request(url, { dispatcher: cache.agent }).then((response) => response.body.arrayBuffer()),
  )
  await sleep(10)
  const thrown = new Promise<void>((resolve) => {
    cache.agent.dispatch(
      { origin: origin.url, path: '/failing', method: 'GET' },
      {
        onRequestStart() {},
        onResponseError() {
          resolve()
          throw new Error('thrown by a waiter')
        },
      },
    )
  })
  const second = outcome(
    request(url, { dispatcher: cache.agent }).then((response) => response.body.arrayBuffer()),
  )
  await thrown
  assert.deepEqual([await first, await second], ['error UND_ERR_SOCKET', 'error UND_ERR_SOCKET'])
  assert.equal(origin.count('/failing'), 1)
  await cache.agent.destroy()
  await cache.store.close()
})

test('a waiter that stops reading holds requests waiting for the entry no longer than WAITER_HOLD_MS', async () => {
  const cache = makeAgent(new MemoryStore()) // keeps the body: the stopped waiter reads the rest from it
  const url = `${origin.url}/awaited`
  const caller = request(url, { dispatcher: cache.agent }).then(async (response) => {
    for await (const _chunk of response.body) break // leaves after its first chunk
  })
  await sleep(5)
  const stopped = read(url, cache.agent, { pauseMs: 4000 })
  const startedMs = performance.now()
  const ranged = await request(url, { dispatcher: cache.agent, headers: { range: 'bytes=0-9' } })
  assert.equal(ranged.statusCode, 206)
  assert.ok(BODY.subarray(0, 10).equals(Buffer.from(await ranged.body.arrayBuffer())))
  const waitedMs = performance.now() - startedMs
  assert.ok(waitedMs < 3000, `the Range request waited ${Math.round(waitedMs)} ms`)
  await caller
  assert.ok((await stopped).equals(BODY))
  assert.equal(origin.count('/awaited'), 1)
  await cache.close()
})

test('waiters fed live held up by a stopped first caller ask the origin for the whole body again, checked', async () => {
  const cache = makeAgent(new MemoryStore({ maxEntryBytes: MiB }))
  const url = `${origin.url}/caller-holds`
  const startedMs = performance.now()
  const waiters = [
    sleep(5).then(() => read(url, cache.agent, { pauseMs: 300 })),
    sleep(5).then(() => read(url, cache.agent, {})),
  ].map((body) => body.then((got) => ({ got, ms: performance.now() - startedMs })))
  const caller = read(url, cache.agent, { pauseMs: 3000 })
  for (const { got, ms } of await Promise.all(waiters)) {
    assert.ok(got.equals(BODY))
    assert.ok(ms < 2500, `a waiter was held ${Math.round(ms)} ms`)
  }
  assert.ok((await caller).equals(BODY))
  const again = origin.requests.filter((seen) => seen.url === '/caller-holds')
  assert.equal(again.length, 3)
  for (const seen of again) assert.equal(seen.headers.range, undefined)
  await cache.close()
})

test('waiters fed live keep the pace of a first caller that reads slower than the origin sends: it holds them now and then, never long', async () => {
  const cache = makeAgent(new MemoryStore({ maxEntryBytes: MiB }))
  const url = `${origin.url}/slow-caller`
  const caller = request(url, { dispatcher: cache.agent }).then(async (response) => {
    const chunks: Buffer[] = []
    let nextPauseBytes = MiB
    let bytes = 0
    for await (const chunk of response.body) {
      chunks.push(chunk)
      bytes += chunk.length
      if (bytes < nextPauseBytes) continue
      nextPauseBytes += MiB
      await sleep(250) // 1.5 s in all, none of it 1 s at a stretch
    }
    return Buffer.concat(chunks)
  })
  const waiters = [sleep(5), sleep(5)].map((slept) => slept.then(() => read(url, cache.agent, {})))
  for (const body of await Promise.all([caller, ...waiters])) assert.ok(body.equals(BODY))
  assert.equal(origin.count('/slow-caller'), 1)
  await cache.close()
})

test('waiters fed live that pause as long as a stopped first caller stay on its download: it held nobody up', async () => {
  const cache = makeAgent(new MemoryStore({ maxEntryBytes: MiB }))
  const url = `${origin.url}/all-pause`
  const bodies = await Promise.all([
    read(url, cache.agent, { pauseMs: 1500 }),
    sleep(5).then(() => read(url, cache.agent, { pauseMs: 1500 })),
    sleep(5).then(() => read(url, cache.agent, { pauseMs: 1500 })),
  ])
  for (const body of bodies) assert.ok(body.equals(BODY))
  assert.equal(origin.count('/all-pause'), 1)
  await cache.close()
})

for (const [path, what] of [
  ['/lm-now', 'a Last-Modified of the time it answers'],
  ['/etag-later', 'an ETag it had not sent before'],
]) {
  test(`a waiter that left a stopped first caller takes the same bytes sent again with ${what}`, async () => {
    const cache = makeAgent(new MemoryStore({ maxEntryBytes: MiB }))
    const url = `${origin.url}${path}`
    const [caller, waiter] = await Promise.all([
      read(url, cache.agent, { pauseMs: 3000 }),
      sleep(5).then(() => read(url, cache.agent, {})),
    ])
    assert.ok(waiter.equals(BODY))
    assert.ok(caller.equals(BODY))
    assert.equal(origin.count(path), 2)
    await cache.close()
  })
}

test('a waiter that fell behind a held download, then wants its rest, leaves a stopped first caller too', async () => {
  const cache = makeAgent(new MemoryStore({ maxEntryBytes: MiB }))
  const dispatch = (
    onStart: (controller: Dispatcher.DispatchController) => void,
    onBytes: (controller: Dispatcher.DispatchController, bytes: number) => void,
  ) =>
    new Promise<{ body: Buffer; endedMs: number }>((resolve, reject) => {
      const chunks: Buffer[] = []
      let bytes = 0
      cache.agent.dispatch(
        { origin: origin.url, path: '/behind-then-held', method: 'GET' },
        {
          onRequestStart() {},
          onResponseStart: (controller) => onStart(controller),
          onResponseData: (controller, chunk) => {
            chunks.push(chunk)
            bytes += chunk.length
            onBytes(controller, bytes)
          },
          onResponseEnd: () => resolve({ body: Buffer.concat(chunks), endedMs: performance.now() }),
          onResponseError: (_controller, error) => reject(error),
        },
      )
    })
  // the first caller stops for good once it has 1 MiB
  let stopped = false
  const caller = dispatch(
    () => {},
    (controller, bytes) => {
      if (stopped || bytes < MiB) return
      stopped = true
      controller.pause()
    },
  )
  caller.catch(() => {})
  await sleep(5)
  // the waiter pauses from its start (it is let fall behind), then wants its rest
  let resumedMs = 0
  const waiter = dispatch(
    (controller) => {
      controller.pause()
      setTimeout(() => {
        resumedMs = performance.now()
        controller.resume()
      }, 2500)
    },
    () => {},
  )
  const ended = await within(6000, 'the waiter', waiter).catch(async (error) => {
    await cache.agent.destroy()
    throw error
  })
  assert.ok(ended.body.equals(BODY))
  const waitedMs = ended.endedMs - resumedMs
  assert.ok(waitedMs < 2000, `ended ${Math.round(waitedMs)} ms after it resumed`)
  assert.equal(origin.count('/behind-then-held'), 2)
  await cache.agent.destroy()
  await cache.store.close()
})
