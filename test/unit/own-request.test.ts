import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Dispatcher } from 'undici'
import { Flights, type Waiter } from '../../lib/flights.js'
import { ownRequestOptions } from '../../lib/own-request.js'

type Cancel = (reason: Error) => void
type Hooked = Record<string | symbol, unknown>

/** Dispatch options carrying a hook like undici 8's (a symbol described 'queued abort'). */
function withHook() {
  const hook = Symbol('queued abort')
  const other = Symbol('something else')
  // undici's hook hands the caller's abort the dispatcher's cancel
  let callerAbort: Cancel | undefined
  const opts = {
    origin: 'http://127.0.0.1',
    path: '/',
    method: 'GET',
    [other]: 1,
    [hook]: (cancel: Cancel) => {
      callerAbort = cancel
    },
  }
  /** What the dispatcher would do with the options: install its cancel through the hook. */
  const install = (own: Dispatcher.DispatchOptions, cancelled: string[]) =>
    ((own as unknown as Hooked)[hook] as (cancel: Cancel) => void)(
      (reason) => void cancelled.push(reason.message),
    )
  return {
    hook,
    other,
    opts: opts as Dispatcher.DispatchOptions,
    install,
    abort: (why: string) => callerAbort?.(new Error(why)),
  }
}

test("a request that is not the caller's (null) drops the hook; other options and symbols stay", () => {
  const { hook, other, opts } = withHook()
  const own = ownRequestOptions(opts, null) as unknown as Hooked
  assert.notEqual(own, opts)
  assert.equal(own[hook], undefined)
  assert.equal(own[other], 1)
  assert.equal(own.path, '/')
  assert.equal(typeof (opts as unknown as Hooked)[hook], 'function')
})

test("the caller's own request keeps its options; options without the hook (undici 7) are used as they are", () => {
  const { opts } = withHook()
  assert.equal(ownRequestOptions(opts, undefined), opts)
  const plain: Dispatcher.DispatchOptions = { origin: 'http://127.0.0.1', path: '/', method: 'GET' }
  assert.equal(ownRequestOptions(plain, null), plain)
  assert.equal(ownRequestOptions(plain, new Flights().start('k', 0, 0)), plain)
})

test('a shared request: cancelled at once when nobody waits on it, else once the last waiter leaves', () => {
  const alone = withHook()
  const cancelledAlone: string[] = []
  alone.install(ownRequestOptions(alone.opts, new Flights().start('a', 0, 0)), cancelledAlone)
  alone.abort('alone')
  assert.deepEqual(cancelledAlone, ['alone'])

  const shared = withHook()
  const flight = new Flights().start('b', 0, 0)
  const waiters: Waiter[] = [0, 1].map(() => ({ settled: () => {}, reuses: () => true }))
  for (const waiter of waiters) flight.join(waiter)
  const cancelled: string[] = []
  shared.install(ownRequestOptions(shared.opts, flight), cancelled)
  shared.abort('caller left')
  assert.deepEqual(cancelled, [])
  flight.leave(waiters[0] as Waiter, new Error('first waiter left'))
  assert.deepEqual(cancelled, [])
  flight.leave(waiters[1] as Waiter, new Error('last waiter left'))
  assert.deepEqual(cancelled, ['caller left'])
})
