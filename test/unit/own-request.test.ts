import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Dispatcher } from 'undici'
import { ownRequestOptions } from '../../lib/own-request.js'

test("the caller's queued-abort hook (undici 8) is cleared; other options and symbols are kept", () => {
  const hook = Symbol('queued abort')
  const other = Symbol('something else')
  const opts = { origin: 'http://127.0.0.1', path: '/', method: 'GET', [hook]: () => {}, [other]: 1 }
  const own = ownRequestOptions(opts as Dispatcher.DispatchOptions) as unknown as Record<
    string | symbol,
    unknown
  >
  assert.notEqual(own, opts)
  assert.equal(own[hook], undefined)
  assert.equal(own[other], 1)
  assert.equal(own.path, '/')
  assert.equal(typeof (opts as Record<symbol, unknown>)[hook], 'function')
})

test('options without the hook (undici 7) are used as they are', () => {
  const opts: Dispatcher.DispatchOptions = { origin: 'http://127.0.0.1', path: '/', method: 'GET' }
  assert.equal(ownRequestOptions(opts), opts)
})

test("with other requests waiting, the caller's abort leaves a queued request alone; alone, it cancels it", () => {
  const hook = Symbol('queued abort')
  // undici's hook: it hands the handler's abort the dispatcher's cancel
  let callerAbort: ((reason: Error) => void) | undefined
  const callerHook = (cancel: (reason: Error) => void) => {
    callerAbort = cancel
  }
  let waiting = 1
  const opts = { origin: 'http://127.0.0.1', path: '/', method: 'GET', [hook]: callerHook }
  const own = ownRequestOptions(opts as Dispatcher.DispatchOptions, () => waiting === 0) as unknown as Record<
    symbol,
    (cancel: (reason: Error) => void) => void
  >
  const cancelled: string[] = []
  own[hook]?.((reason) => void cancelled.push(reason.message))
  callerAbort?.(new Error('first'))
  waiting = 0
  callerAbort?.(new Error('second'))
  assert.deepEqual(cancelled, ['second'])
})

test('a background request drops the hook altogether', () => {
  const hook = Symbol('queued abort')
  const opts = { origin: 'http://127.0.0.1', path: '/', method: 'GET', [hook]: () => {} }
  const own = ownRequestOptions(opts as Dispatcher.DispatchOptions) as unknown as Record<symbol, unknown>
  assert.equal(own[hook], undefined)
})
