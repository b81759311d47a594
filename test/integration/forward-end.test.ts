import assert from 'node:assert/strict'
import diagnosticsChannel from 'node:diagnostics_channel'
import { after, before, describe, test } from 'node:test'
import type { Dispatcher } from 'undici'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { AsyncStore } from '../helpers/async-store.js'
import { readAll, within } from '../helpers/caller.js'
import { makeAgent, sleep } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

const MiB = 1024 * 1024
const BODY = Buffer.alloc(2 * MiB, 7)

let origin: Origin
before(async () => {
  origin = await startOrigin((_req, res) =>
    reply(res, 200, { 'cache-control': 'max-age=60', etag: '"v1"' }, BODY as unknown as string),
  )
})
after(() => origin.close())

type Callbacks = Pick<Dispatcher.DispatchHandler, 'onResponseData' | 'onResponseEnd'>

/** One GET through `agent` with the given callbacks, logging what the caller is told until it is over. */
function dispatchLogged(
  agent: Dispatcher,
  path: string,
  headers: Record<string, string>,
  callbacks: Callbacks,
) {
  const log: string[] = []
  const over = new Promise<void>((resolve) => {
    agent.dispatch({ origin: origin.url, path, method: 'GET', headers }, {
      onRequestStart() {},
      onResponseData: callbacks.onResponseData,
      onResponseEnd(controller: Dispatcher.DispatchController, trailers: Record<string, string>) {
        log.push('end')
        setTimeout(resolve, 50)
        callbacks.onResponseEnd?.(controller, trailers)
      },
      onResponseError(_controller: Dispatcher.DispatchController, error: Error) {
        log.push(`error: ${error.message}`)
        setTimeout(resolve, 50)
      },
    } as Dispatcher.DispatchHandler)
  })
  return { log, over }
}

// A request with its own conditional goes to the origin alone (no flight), read straight from it.
for (const [how, headers] of [
  ['alone (its own If-Match)', { 'if-match': '"v1"' }],
  ['as the first of a flight', {}],
] as const) {
  describe(`the end of a response stored while it streams, read ${how}`, () => {
    test('an abort while the entry is being committed is the caller’s error, and the entry is kept', async () => {
      const cache = makeAgent(new AsyncStore(new MemoryStore({ maxEntryBytes: 8 * MiB })))
      const path = `/abort-at-commit-${Object.keys(headers).length}`
      let receivedBytes = 0
      const { log, over } = dispatchLogged(cache.agent, path, headers, {
        onResponseData(controller, chunk) {
          receivedBytes += chunk.length
          if (receivedBytes === BODY.length) setImmediate(() => controller.abort(new Error('gave up')))
        },
      })
      await within(5000, 'the caller', over)
      assert.deepEqual(log, ['error: gave up'])
      await sleep(50)
      assert.match(String((await readAll(cache.agent, `${origin.url}${path}`)).status), /^undici-cache; hit/)
      assert.equal(origin.count(path), 1)
      await cache.close()
    })

    test("a throw from a caller's onResponseEnd becomes its onResponseError (as in undici), and the entry is stored", async () => {
      const cache = makeAgent(new AsyncStore(new MemoryStore({ maxEntryBytes: 8 * MiB })))
      const path = `/throw-at-end-${Object.keys(headers).length}`
      const reported: unknown[] = []
      const onStoreError = (message: unknown) => reported.push(message)
      diagnosticsChannel.subscribe('undici-cache:store-error', onStoreError)
      const { log, over } = dispatchLogged(cache.agent, path, headers, {
        onResponseEnd() {
          throw new Error('thrown in onResponseEnd')
        },
      })
      await within(5000, 'the caller', over)
      diagnosticsChannel.unsubscribe('undici-cache:store-error', onStoreError)
      assert.deepEqual(log, ['end', 'error: thrown in onResponseEnd'])
      assert.deepEqual(reported, [])
      assert.match(String((await readAll(cache.agent, `${origin.url}${path}`)).status), /^undici-cache; hit/)
      await cache.close()
    })
  })
}
