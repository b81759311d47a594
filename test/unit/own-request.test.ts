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
