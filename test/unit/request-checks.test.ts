/**
 * lib/request-checks.ts against undici's own Request checks, over generated request options (not
 * maxRedirections: a redirect interceptor inside the cache takes it, and the check leaves it alone).
 */
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'
import fc from 'fast-check'
import type { DispatchOptions } from '../../lib/exchange.js'
import { undiciRefuses } from '../../lib/request-checks.js'
import { withReplayableHeaders } from '../../lib/request-headers.js'

type RequestClass = new (origin: string, opts: unknown, handler: unknown) => unknown

/** undici's Request (its internal module, read only by this test), if this undici has it there. */
function undiciRequest(): RequestClass | undefined {
  try {
    return createRequire(import.meta.url)('undici/lib/core/request.js') as RequestClass
  } catch {
    return undefined
  }
}
const UndiciRequest = undiciRequest()
if (!UndiciRequest)
  console.log('# undici/lib/core/request.js not found in this undici: the comparison is skipped')

/** A new-API handler as undici 7 and 8 check it. */
const HANDLER = {
  onRequestStart() {},
  onResponseStart() {},
  onResponseData() {},
  onResponseEnd() {},
  onResponseError() {},
}

const refusedByUndici = (opts: DispatchOptions): boolean => {
  try {
    Reflect.construct(UndiciRequest as RequestClass, ['http://127.0.0.1:1', opts, HANDLER])
    return false
  } catch {
    return true
  }
}

/** Mostly what undici takes, now and then anything: the boundary between the two is what is compared. */
const mostly = <T, U>(valid: fc.Arbitrary<T>, any: fc.Arbitrary<U>) =>
  fc.oneof({ arbitrary: valid, weight: 12 }, { arbitrary: any, weight: 1 })

const name = mostly(
  fc.constantFrom('accept', 'X-Custom', 'host', 'content-length', 'connection', 'content-type'),
  fc.constantFrom('transfer-encoding', 'keep-alive', 'upgrade', 'expect', 'x a', 'x:y', '', 'é', 'Host'),
)
const text = mostly(
  fc.constantFrom('text/html', '', ' a ', 'tab\there', 'café', 'close', 'keep-alive', 'a, b', '0', '12'),
  fc.constantFrom('a\r\nb', 'a\nb', 'a\0b', 'a b', '-1', '1.5', '100-continue', '\u0100'),
)
const value = mostly(
  fc.oneof(text, fc.constantFrom(null, undefined, 0, 5, true), fc.array(text, { maxLength: 2 })),
  fc.constantFrom(Symbol('s'), {}, [{}], () => 'f'),
)
const headers = fc.oneof(
  fc.constant(undefined),
  fc.dictionary(name, value, { maxKeys: 3 }),
  fc.array(fc.tuple(name, value), { maxLength: 3 }).map((pairs) => pairs.flat()),
  fc.array(fc.tuple(name, value), { maxLength: 3 }).map((pairs) => new Map(pairs)),
  fc.array(fc.tuple(name, value), { maxLength: 3 }).map((pairs) => pairs.values()),
  fc.constantFrom(5, 'x', ['a', 'b', 'c'], [['a', 'b']], [['a']].values(), { [Symbol.iterator]: 5 }),
  fc.constant(Object.assign(Object.create({ [Symbol.iterator]: 5 }), { accept: 'a' })),
)
const option = <T, U>(any: fc.Arbitrary<U>, valid?: fc.Arbitrary<T>) =>
  mostly(valid ?? fc.constant(undefined), any)
const options = fc.record({
  method: option(fc.constantFrom('G T', '', 5, 'GÉT'), fc.constantFrom('GET', 'HEAD', 'get', 'PURGE')),
  query: option(fc.constantFrom({ a: 1 }), fc.constantFrom(undefined, null)),
  body: option(
    fc.constantFrom(
      5,
      true,
      {},
      Symbol('b'),
      { [Symbol.toStringTag]: 'Blob' },
      { [Symbol.toStringTag]: 'FormData', append() {} },
      Object.assign(() => {}, { [Symbol.iterator]: [][Symbol.iterator] }),
      Object.defineProperty({}, Symbol.iterator, {
        get() {
          throw new Error('getter')
        },
      }),
    ),
    fc.constantFrom(
      undefined,
      null,
      '',
      'x',
      Buffer.from('x'),
      new Uint8Array(1),
      new ArrayBuffer(1),
      ['x'],
      new Blob(['x']),
    ),
  ),
  path: option(
    fc.constantFrom('/a b', 'p', '/\u0001', '/é'),
    fc.constantFrom('/p', '/p?q=1', 'http://127.0.0.1:1/p'),
  ),
  headersTimeout: option(fc.constantFrom(-1, 'x', Number.NaN), fc.constantFrom(undefined, null, 0, 1000)),
  bodyTimeout: option(fc.constantFrom(-1, Number.POSITIVE_INFINITY, '5')),
  reset: option(fc.constantFrom('x', 1), fc.constantFrom(undefined, null, true, false)),
  expectContinue: option(fc.constantFrom('x', 0), fc.constantFrom(undefined, false)),
  throwOnError: option(fc.constantFrom(true, false, null)),
  typeOfService: option(fc.constantFrom(256, 1.5, -1), fc.constantFrom(undefined, 0, 255)),
  headers,
})

test("undiciRefuses says what undici's Request refuses, over generated options", {
  skip: !UndiciRequest,
}, () => {
  fc.assert(
    fc.property(options, (generated) => {
      // the cache reads a one-shot iterable once and hands on what it read (withReplayableHeaders)
      const opts = withReplayableHeaders(generated as unknown as DispatchOptions)
      const expected = refusedByUndici(opts)
      assert.equal(undiciRefuses(opts), expected, String(expected ? 'undici refuses it' : 'undici takes it'))
    }),
    { numRuns: 5000, seed: 9241 },
  )
})
