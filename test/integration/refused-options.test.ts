/** Options undici refuses fail alike on a hit and a miss, as with a plain Agent; valid ones still hit. */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Agent, type Dispatcher, request } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

let origin: Origin

before(async () => {
  origin = await startOrigin((req, res) =>
    reply(res, 200, { 'cache-control': 'max-age=60' }, `page ${req.url}`),
  )
})
after(() => origin.close())

type Options = Parameters<typeof request>[1]

const REFUSED: Record<string, Options> = {
  'a CRLF in a value': { headers: { 'x-a': 'a\r\nx-b: b' } },
  'a space in a name': { headers: { 'x a': 'b' } },
  'an odd flat array': { headers: ['x-a', 'b', 'x-c'] },
  'headers that are a number': { headers: 5 as unknown as Record<string, string> },
  'an object value': { headers: { 'x-a': {} as unknown as string } },
  'transfer-encoding': { headers: { 'transfer-encoding': 'chunked' } },
  'keep-alive': { headers: { 'keep-alive': 'timeout=5' } },
  'an upgrade field': { headers: { upgrade: 'websocket' } },
  'expect: 100-continue': { headers: { expect: '100-continue' } },
  'connection: a b': { headers: { connection: 'a b' } },
  'two hosts': { headers: ['host', 'a', 'Host', 'b'] },
  'a content-length of x': { headers: { 'content-length': 'x' } },
  'bodyTimeout -1': { bodyTimeout: -1 },
  "headersTimeout 'x'": { headersTimeout: 'x' as unknown as number },
  "reset 'x'": { reset: 'x' as unknown as boolean },
  "expectContinue 'x'": { expectContinue: 'x' as unknown as boolean } as Options,
  'throwOnError true': { throwOnError: true } as unknown as Options,
  'typeOfService 300': { typeOfService: 300 } as unknown as Options,
  "a content-length of ['0']": { headers: { 'content-length': ['0'] } },
  'a symbol value': { headers: { 'x-a': Symbol('s') } as unknown as Record<string, string> },
}

/** A one-shot generator of items that are no pairs: made again for each request. */
function* noPairs(): Generator<string[]> {
  yield ['x-a', '1', 'x-b']
}

const valid = (host: string): Record<string, Options> => ({
  'a flat array': { headers: ['x-a', 'b', 'x-a', 'c'] },
  'a Map': { headers: new Map([['x-a', 'b']]) as unknown as Record<string, string> },
  'a number and a null value': { headers: { 'x-n': 5, 'x-null': null } as unknown as Record<string, string> },
  'connection: keep-alive, host': { headers: { connection: 'keep-alive', host } },
  'timeouts, reset': { headersTimeout: 1000, bodyTimeout: 0, reset: false },
  // undici sends a value that is no string as its text
  'host and connection as numbers': {
    headers: { host: 127, connection: 5 } as unknown as Record<string, string>,
  },
  'host: null': { headers: { host: null } as unknown as Record<string, string> },
  // fields of an object whose prototype has a Symbol.iterator that is no function (undici's hasSafeIterator)
  'an object with an odd prototype': {
    headers: Object.assign(Object.create({ [Symbol.iterator]: 5 }), { accept: 'text/plain' }),
  },
})

async function outcome(dispatcher: Dispatcher, path: string, options: Options): Promise<string> {
  try {
    const response = await request(`${origin.url}${path}`, { ...options, dispatcher })
    return `${response.statusCode} ${await response.body.text()} ${response.headers['cache-status'] ?? ''}`.trim()
  } catch (error) {
    const { name, code, message } = error as { name: string; code?: string; message: string }
    return `${name} ${code} ${message}`
  }
}

test('options undici refuses fail on a cached URL as with a plain Agent, with its error', async () => {
  const plain = new Agent()
  const cache = new CacheAgent({ store: new MemoryStore() })
  try {
    const cases = Object.entries(REFUSED).map(([name, options]) => [name, () => options] as const)
    const generated = () => ({ headers: noPairs() as unknown as string[] })
    for (const [name, options] of [...cases, ['a generator of no pairs', generated] as const]) {
      const path = `/refused-${encodeURIComponent(name)}`
      assert.equal(await outcome(cache, path, {}), `200 page ${path} undici-cache; fwd=miss; stored`)
      const expected = await outcome(plain, path, options())
      assert.match(expected, /^\w*Error /, `${name}: undici refuses it`)
      assert.equal(await outcome(cache, path, options()), expected, name)
    }
  } finally {
    await plain.close()
    await cache.close()
  }
})

test('request options undici takes are still answered from the cache', async () => {
  const cache = new CacheAgent({ store: new MemoryStore() })
  try {
    for (const [name, options] of Object.entries(valid(new URL(origin.url).host))) {
      const path = `/valid-${encodeURIComponent(name)}`
      await outcome(cache, path, options)
      assert.match(await outcome(cache, path, options), /^200 page \S+ undici-cache; hit; ttl=\d+$/, name)
      assert.equal(origin.count(path), 1, name)
    }
  } finally {
    await cache.close()
  }
})

test("an only-if-cached request undici refuses fails with its error, not the cache's 504", async () => {
  const plain = new Agent()
  const cache = new CacheAgent({ store: new MemoryStore() })
  const onlyIfCached = { 'cache-control': 'only-if-cached' }
  const cases: [string, string, Options][] = [
    ['a method that is no token', '/m', { method: 'G T', headers: onlyIfCached }],
    ['a query with a path that has one', '/q?a=1', { query: { b: 2 }, headers: onlyIfCached }],
    [
      'a body undici cannot send',
      '/b',
      { method: 'POST', body: 5 as unknown as string, headers: onlyIfCached },
    ],
  ]
  try {
    for (const [name, path, options] of cases) {
      const expected = await outcome(plain, path, options)
      assert.match(expected, /^\w*Error /, `${name}: undici refuses it`)
      assert.equal(await outcome(cache, path, options), expected, name)
    }
  } finally {
    await plain.close()
    await cache.close()
  }
})
