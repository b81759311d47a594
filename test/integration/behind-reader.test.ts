/**
 * A reader that fell behind while the store was writing (Content-Length, no strong ETag) is never failed
 * by the store: when the write fails it asks the origin for the whole body again, and gets the rest only
 * if the bytes before it check as those it has (BodyDigest).
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Dispatcher } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { StoredEntry } from '../../lib/stores/store.js'
import { FailingWrites } from '../helpers/async-store.js'
import { sleep } from '../helpers/client.js'
import { type Origin, startOrigin } from '../helpers/origin.js'

const SIZE = 6 * 1024 * 1024
const CHUNK_BYTES = 64 * 1024
/** The body as the origin sends it the nth time (the same each time, but for /changing). */
const bodyOf = (nth: number) => Buffer.from(Array.from({ length: SIZE }, (_, i) => (i * 7 + nth) % 251))
const BODY = bodyOf(0)

let origin: Origin
/** How many bytes each response to /slow had sent when it was closed, and when. */
const slowCloses: { atMs: number; sentBytes: number }[] = []
before(async () => {
  origin = await startOrigin((req, res) => {
    res.setHeader('content-length', String(SIZE))
    res.setHeader('cache-control', 'max-age=600') // no ETag
    // the nth request to /changing gets bodyOf(n), n from 1; /retyped is another type the second time
    const body = req.url === '/changing' ? bodyOf(origin.count('/changing')) : BODY
    if (req.url === '/retyped' && origin.count('/retyped') > 1) res.setHeader('content-type', 'image/png')
    let sent = 0
    res.writeHead(200)
    if (req.url === '/slow') {
      // 64 KiB every 20 ms: 2 s in all
      res.on('close', () => slowCloses.push({ atMs: performance.now(), sentBytes: sent }))
      const timer = setInterval(() => {
        res.write(body.subarray(sent, sent + CHUNK_BYTES))
        sent += CHUNK_BYTES
        if (sent >= SIZE) {
          clearInterval(timer)
          res.end()
        }
      }, 20)
      res.on('close', () => clearInterval(timer))
      return
    }
    const pump = () => {
      while (sent < SIZE) {
        const more = res.write(body.subarray(sent, sent + CHUNK_BYTES))
        sent += CHUNK_BYTES
        if (!more) return void res.once('drain', pump)
      }
      res.end()
    }
    pump()
  })
})
after(() => origin.close())

/** Writes fail past 1.5 MiB (a disk that fills up). */
const fillingStore = () => new FailingWrites(1.5 * 1024 * 1024)

interface Outcome {
  outcome: string
  ms: number
  body: Buffer
}

/** A raw dispatch whose handler reads with `onData`; resolves with how it ended, what it got and when. */
function read(
  agent: Dispatcher,
  onData: (controller: Dispatcher.DispatchController, bytes: number) => void,
  path = '/big',
) {
  const startedMs = performance.now()
  const chunks: Buffer[] = []
  let bytes = 0
  return new Promise<Outcome>((resolve) => {
    const done = (outcome: string) =>
      resolve({ outcome, ms: performance.now() - startedMs, body: Buffer.concat(chunks) })
    agent.dispatch(
      { origin: origin.url, path, method: 'GET' },
      {
        onRequestStart() {},
        onResponseData(controller, chunk) {
          chunks.push(chunk)
          bytes += chunk.length
          onData(controller, bytes)
        },
        onResponseEnd: () => done(`end after ${bytes} bytes`),
        onResponseError: (_controller, error) => done(`error: ${error.message}`),
      },
    )
  })
}

/** Pauses once, at the first chunk, for `ms`. */
const pauseOnce = (ms: number) => {
  let paused = false
  return (controller: Dispatcher.DispatchController) => {
    if (paused) return
    paused = true
    controller.pause()
    setTimeout(() => controller.resume(), ms)
  }
}

test('a first caller that fell behind gets its rest from the origin when the store fails, though a waiter fed live stopped for good', async () => {
  const agent = new CacheAgent({ store: fillingStore() })
  const caller = read(agent, pauseOnce(800)) // falls behind while the store writes
  const waiter = read(agent, (controller, bytes) => {
    if (bytes >= 1.2 * 1024 * 1024) controller.pause() // stops for good
  })
  const ended = await Promise.race([caller, sleep(5000).then(() => undefined)])
  assert.equal(ended?.outcome, `end after ${SIZE} bytes`)
  assert.ok(ended.body.equals(BODY), 'the rest spliced on is the same body')
  assert.ok(ended.ms < 3000, `after ${Math.round(ended.ms)} ms`)
  // the whole body asked for again (no strong ETag to ask for a range by)
  const again = origin.requests.filter((seen) => seen.url === '/big')
  assert.equal(again.length, 2)
  assert.equal(again[1]?.headers.range, undefined)
  await agent.destroy()
  await waiter
})

test('a reader whose body the origin sends again with other first bytes fails: nothing is spliced on', async () => {
  const agent = new CacheAgent({ store: fillingStore() })
  const [caller, waiter] = await Promise.all([
    read(agent, pauseOnce(800), '/changing'),
    read(agent, () => {}, '/changing'),
  ])
  assert.equal(waiter.outcome, `end after ${SIZE} bytes`)
  assert.ok(waiter.body.equals(bodyOf(1)))
  assert.match(caller.outcome, /could not be fetched again \(its answer begins with other bytes\)$/)
  assert.ok(caller.body.length < SIZE, `${caller.body.length} bytes`)
  assert.ok(caller.body.equals(bodyOf(1).subarray(0, caller.body.length)), 'what it got is the first body')
  assert.equal(origin.count('/changing'), 2)
  await agent.close()
})

test('once every reader has fallen behind and the store failed, the download stops, and each gets its rest from the origin', async () => {
  const agent = new CacheAgent({ store: fillingStore() })
  const startedMs = performance.now()
  const outcomes = await Promise.all([
    read(agent, pauseOnce(1000), '/slow'),
    read(agent, pauseOnce(1000), '/slow'),
  ])
  for (const { outcome, body } of outcomes) {
    assert.equal(outcome, `end after ${SIZE} bytes`)
    assert.ok(body.equals(BODY))
  }
  const [first] = slowCloses
  assert.ok(first, 'the shared response was closed')
  assert.ok(first.sentBytes < SIZE, `the origin sent ${first.sentBytes} of ${SIZE} bytes`)
  assert.ok(first.atMs - startedMs < 1500, `closed after ${Math.round(first.atMs - startedMs)} ms`)
  assert.equal(origin.count('/slow'), 3)
  await agent.close()
})

test('a first caller that read alone until a request joined also gets its rest from the origin when the store fails', async () => {
  const agent = new CacheAgent({ store: fillingStore() })
  let joined: Promise<Outcome> | undefined
  const caller = read(
    agent,
    (controller) => {
      if (joined) return
      joined = read(agent, () => {}, '/late') // waits for the entry, then goes its own way
      controller.pause()
      setTimeout(() => controller.resume(), 800)
    },
    '/late',
  )
  const ended = await caller
  assert.equal(ended.outcome, `end after ${SIZE} bytes`)
  assert.ok(ended.body.equals(BODY))
  const other = await joined
  assert.equal(other?.outcome, `end after ${SIZE} bytes`)
  assert.ok(other?.body.equals(BODY))
  // the shared download, the joined request's own once the store failed, and the first caller's rest
  assert.equal(origin.count('/late'), 3)
  await agent.close()
})

test('a reader that fell behind before its first byte takes the body asked for again only if it describes the same representation', async () => {
  const agent = new CacheAgent({ store: fillingStore() })
  const caller = read(agent, () => {}, '/retyped')
  const waiter = new Promise<string>((resolve) => {
    let bytes = 0
    agent.dispatch(
      { origin: origin.url, path: '/retyped', method: 'GET' },
      {
        onRequestStart() {},
        // nothing read before the store fails: a check of the bytes before the rest proves nothing
        onResponseStart: (controller) => {
          controller.pause()
          setTimeout(() => controller.resume(), 800)
        },
        onResponseData: (_controller, chunk) => {
          bytes += chunk.length
        },
        onResponseEnd: () => resolve(`end after ${bytes} bytes`),
        onResponseError: (_controller, error) => resolve(`error after ${bytes} bytes: ${error.message}`),
      },
    )
  })
  assert.equal((await caller).outcome, `end after ${SIZE} bytes`)
  assert.equal(
    await waiter,
    'error after 0 bytes: undici-cache: the rest of a shared response could not be fetched again (its answer is another representation)',
  )
  assert.equal(origin.count('/retyped'), 2)
  await agent.close()
})

/**
 * A MemoryStore shared with another machine, as a RedisStore is: once a response is committed, a
 * lookup also finds another machine's response to the same URL, committed after it in its place, with
 * the same Vary key and the same times (its answer started in the same millisecond) but other bytes.
 */
class CommittedElsewhereToo extends MemoryStore {
  static readonly OTHER = bodyOf(9)

  override get(key: string): StoredEntry[] {
    const entries = super.get(key) as StoredEntry[]
    const ours = entries[0]
    if (!ours) return entries
    const other = CommittedElsewhereToo.OTHER
    const elsewhere: StoredEntry = {
      ...ours,
      writeId: 'another-machine.1',
      id: 'another-machine',
      body: other,
      readBody: () => [other],
      readRange: (startBytes, endBytes) => [other.subarray(startBytes, endBytes)],
    }
    return [elsewhere, ...entries]
  }
}

test("a reader that fell behind reads its rest from its own response's entry, never from another one with the same times (review helper 140)", async () => {
  const agent = new CacheAgent({ store: new CommittedElsewhereToo({ maxEntryBytes: 2 * SIZE }) })
  const [caller, waiter] = await Promise.all([
    read(agent, pauseOnce(800), '/shared-store'),
    read(agent, () => {}, '/shared-store'),
  ])
  assert.equal(waiter.outcome, `end after ${SIZE} bytes`)
  assert.equal(caller.outcome, `end after ${SIZE} bytes`)
  assert.ok(caller.body.equals(BODY), "the rest is its own response's, not another one spliced on")
  assert.equal(origin.count('/shared-store'), 1)
  await agent.close()
})
