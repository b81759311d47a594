import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { type Dispatcher, RetryAgent, request } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

let origin: Origin
const failOnce = new Set<string>()

before(async () => {
  origin = await startOrigin((req, res) => {
    const path = req.url ?? ''
    if (path.startsWith('/flaky') && !failOnce.has(path)) {
      failOnce.add(path)
      return reply(res, 503, { 'retry-after': '0' }, 'busy')
    }
    reply(res, 200, { 'cache-control': 'max-age=60', etag: '"v1"' }, `fresh ${path}`)
  })
})
after(() => origin.close())

/** One dispatch whose handler throws from onResponseEnd; resolves with what its onResponseError got. */
function throwAtEnd(dispatcher: Dispatcher, path: string): Promise<string> {
  return new Promise((resolve) => {
    dispatcher.dispatch(
      { origin: origin.url, path, method: 'GET' },
      {
        onRequestStart() {},
        onResponseEnd() {
          throw new Error('thrown at the end')
        },
        onResponseError: (_controller, error) => resolve(error.message),
      },
    )
  })
}

test("a throw from a caller's onResponseEnd reaches its onResponseError, on a miss and on a hit, as in undici", {
  timeout: 10_000,
}, async () => {
  const agent = new CacheAgent({ store: new MemoryStore() })
  assert.equal(await throwAtEnd(agent, '/throw'), 'thrown at the end')
  assert.equal(await throwAtEnd(agent, '/throw'), 'thrown at the end')
  assert.equal(origin.count('/throw'), 1, 'the second was a hit')
  await agent.close()
})

test('RetryAgent over a CacheAgent retries a 503 and the retried response is cached', {
  timeout: 10_000,
}, async () => {
  const cache = new CacheAgent({ store: new MemoryStore() })
  const agent = new RetryAgent(cache, { maxRetries: 2, minTimeout: 10, maxTimeout: 20 })
  const first = await request(`${origin.url}/flaky`, { dispatcher: agent })
  assert.equal(first.statusCode, 200)
  assert.equal(await first.body.text(), 'fresh /flaky')
  assert.equal(origin.count('/flaky'), 2)
  const second = await request(`${origin.url}/flaky`, { dispatcher: agent })
  assert.equal(await second.body.text(), 'fresh /flaky')
  assert.match(String(second.headers['cache-status']), /^undici-cache; hit/)
  assert.equal(origin.count('/flaky'), 2)
  await agent.close()
})
