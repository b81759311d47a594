/**
 * A reader that fell behind while the store was writing (Content-Length, no strong ETag) learns at once
 * that the rest is lost when the store's write fails, rather than waiting for an end that a stopped
 * waiter may hold back for good.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Dispatcher } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { EntryMeta, EntryWriter } from '../../lib/stores/store.js'
import { type Origin, startOrigin } from '../helpers/origin.js'

const SIZE = 6 * 1024 * 1024
const CHUNK = Buffer.alloc(64 * 1024, 'a')

let origin: Origin
/** When the origin's response to /slow was closed, and how many bytes it had sent. */
const slow = { closedAtMs: 0, sentBytes: 0 }
before(async () => {
  origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'content-length': String(SIZE), 'cache-control': 'max-age=600' }) // no ETag
    let sent = 0
    if (req.url === '/slow') {
      // 64 KiB every 20 ms: 2 s in all
      res.on('close', () => Object.assign(slow, { closedAtMs: performance.now(), sentBytes: sent }))
      const timer = setInterval(() => {
        sent += CHUNK.length
        res.write(CHUNK)
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
        sent += CHUNK.length
        if (!res.write(CHUNK)) return void res.once('drain', pump)
      }
      res.end()
    }
    pump()
  })
})
after(() => origin.close())

/** A MemoryStore whose writes fail past 1.5 MiB (a disk that fills up). */
class FillingStore extends MemoryStore {
  override put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined {
    const writer = super.put(key, meta, expectedSizeBytes)
    if (!writer) return writer
    let writtenBytes = 0
    return {
      write: (chunk) => {
        writtenBytes += chunk.length
        if (writtenBytes > 1.5 * 1024 * 1024) throw new Error('disk full')
        return writer.write(chunk)
      },
      commit: () => writer.commit(),
      abort: () => writer.abort(),
    }
  }
}

/** A raw dispatch whose handler reads with `onData`; resolves with how it ended and after how long. */
function read(
  agent: Dispatcher,
  onData: (controller: Dispatcher.DispatchController, bytes: number) => void,
  path = '/big',
) {
  const startedMs = performance.now()
  let bytes = 0
  return new Promise<{ outcome: string; ms: number }>((resolve) => {
    const done = (outcome: string) => resolve({ outcome, ms: performance.now() - startedMs })
    agent.dispatch(
      { origin: origin.url, path, method: 'GET' },
      {
        onRequestStart() {},
        onResponseData(controller, chunk) {
          bytes += chunk.length
          onData(controller, bytes)
        },
        onResponseEnd: () => done(`end after ${bytes} bytes`),
        onResponseError: (_controller, error) => done(`error: ${error.message.slice(0, 60)}`),
      },
    )
  })
}

test('a first caller that fell behind fails as soon as the store fails, though a waiter fed live stopped for good', async () => {
  const agent = new CacheAgent({ store: new FillingStore() })
  let paused = false
  const caller = read(agent, (controller) => {
    if (paused) return
    paused = true
    controller.pause() // falls behind while the store writes
    setTimeout(() => controller.resume(), 800)
  })
  const waiter = read(agent, (controller, bytes) => {
    if (bytes >= 1.2 * 1024 * 1024) controller.pause() // stops for good
  })
  const timeout = new Promise<{ outcome: string; ms: number }>((resolve) =>
    setTimeout(() => resolve({ outcome: 'still waiting after 5 s', ms: 5000 }), 5000).unref(),
  )
  const ended = await Promise.race([caller, timeout])
  assert.equal(ended.outcome, 'error: undici-cache: the rest of a shared response this reader fell')
  assert.ok(ended.ms < 2000, `after ${Math.round(ended.ms)} ms`)
  assert.equal(origin.count('/big'), 1)
  await agent.destroy()
  await waiter
})

test('once every reader has failed so, the download stops: nobody reads it', async () => {
  const agent = new CacheAgent({ store: new FillingStore() })
  const startedMs = performance.now()
  const pauseAtOnce = (controller: Dispatcher.DispatchController) => controller.pause()
  const outcomes = await Promise.all([read(agent, pauseAtOnce, '/slow'), read(agent, pauseAtOnce, '/slow')])
  for (const { outcome } of outcomes)
    assert.match(outcome, /^error: undici-cache: the rest of a shared response/)
  for (let i = 0; i < 50 && slow.closedAtMs === 0; i++)
    await new Promise((resolve) => setTimeout(resolve, 20))
  assert.ok(slow.closedAtMs > 0, 'the origin response was closed within a second of the failures')
  assert.ok(slow.sentBytes < SIZE, `the origin sent ${slow.sentBytes} of ${SIZE} bytes`)
  assert.ok(slow.closedAtMs - startedMs < 1500, `closed after ${Math.round(slow.closedAtMs - startedMs)} ms`)
  assert.equal(origin.count('/slow'), 1)
  await agent.close()
})
