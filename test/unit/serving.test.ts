import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Serving, STORE_CALL_WAIT_MAX_MS, type UnderWay } from '../../lib/serving.js'

const flushed = () => new Promise((resolve) => setImmediate(resolve))

test('idle() waits for the requests under way, then for the store calls they left behind', async () => {
  const serving = new Serving()
  const request: UnderWay = { abort: () => {}, slot: -1 }
  serving.started(request)
  let storeCallDone!: () => void
  serving.track(new Promise<void>((resolve) => (storeCallDone = resolve)))
  let idle = false
  void serving.idle().then(() => (idle = true))
  serving.finished(request)
  await flushed()
  assert.equal(idle, false)
  storeCallDone()
  await flushed()
  assert.equal(idle, true)
})

test('a failed store call counts as settled', async () => {
  const serving = new Serving()
  serving.track(Promise.reject(new Error('store gone')))
  await flushed()
  assert.equal(
    await Promise.race([serving.idle().then(() => 'idle'), flushed().then(() => 'waiting')]),
    'idle',
  )
})

test(`idle() waits for store calls ${STORE_CALL_WAIT_MAX_MS} ms at most after the last request, however many follow`, async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const serving = new Serving()
  serving.track(new Promise<void>(() => {}))
  let idle = false
  void serving.idle().then(() => (idle = true))
  t.mock.timers.tick(STORE_CALL_WAIT_MAX_MS / 2)
  // a call made from another's answer does not start the wait again
  serving.track(new Promise<void>(() => {}))
  t.mock.timers.tick(STORE_CALL_WAIT_MAX_MS / 2 - 1)
  await flushed()
  assert.equal(idle, false)
  t.mock.timers.tick(1)
  await flushed()
  assert.equal(idle, true)
})

test('destroying (abortAll) stops waiting for store calls, even for an idle() called before', async () => {
  const serving = new Serving()
  const request: UnderWay = { abort: () => serving.finished(request), slot: -1 }
  serving.started(request)
  serving.track(new Promise<void>(() => {}))
  let idle = false
  void serving.idle().then(() => (idle = true))
  serving.abortAll(new Error('destroyed'))
  await flushed()
  assert.equal(idle, true)
  assert.equal(
    await Promise.race([serving.idle().then(() => 'idle'), flushed().then(() => 'waiting')]),
    'idle',
  )
})
