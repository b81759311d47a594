import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { type Dispatcher, errors, request } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { within } from '../helpers/caller.js'
import { sleep } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

const BODY = 'b'.repeat(1024 * 1024)

let origin: Origin

before(async () => {
  origin = await startOrigin((_req, res) => reply(res, 200, { 'cache-control': 'max-age=300' }, BODY))
})
after(() => origin.close())

interface Paused {
  resume(): void
  done: Promise<{ bytes: number; error?: Error }>
}

/** A GET that pauses at its first chunk until told to resume. */
function pausedGet(agent: Dispatcher, path: string, bodyTimeout?: number): Paused {
  let controller: Dispatcher.DispatchController | undefined
  let bytes = 0
  const done = new Promise<{ bytes: number; error?: Error }>((resolve) => {
    const opts = {
      origin: origin.url,
      path,
      method: 'GET',
      ...(bodyTimeout === undefined ? {} : { bodyTimeout }),
    }
    agent.dispatch(
      opts as Dispatcher.DispatchOptions,
      {
        onRequestStart() {},
        onResponseData(c: Dispatcher.DispatchController, chunk: Buffer) {
          bytes += chunk.length
          if (controller) return
          controller = c
          c.pause()
        },
        onResponseEnd: () => resolve({ bytes }),
        onResponseError: (_c: unknown, error: Error) => resolve({ bytes, error }),
      } as Dispatcher.DispatchHandler,
    )
  })
  return { resume: () => controller?.resume(), done }
}

async function stored(agent: Dispatcher, path: string): Promise<void> {
  const res = await request(`${origin.url}${path}`, { dispatcher: agent })
  assert.equal((await res.body.arrayBuffer()).byteLength, BODY.length)
}

test("a hit its caller keeps paused fails after the inner Agent's bodyTimeout, as a paused miss would", async () => {
  const agent = new CacheAgent({ store: new MemoryStore(), agent: { bodyTimeout: 150 } })
  await stored(agent, '/agent-timeout')
  const startedMs = Date.now()
  const { error } = await within(3000, 'the paused hit', pausedGet(agent, '/agent-timeout').done)
  assert.ok(error instanceof errors.BodyTimeoutError, String(error))
  assert.ok(Date.now() - startedMs >= 140)
  await within(3000, 'close()', agent.close())
  assert.equal(origin.count('/agent-timeout'), 1)
})

test('a dropped request() body of a hit is ended by the timeout, and close() then resolves', async () => {
  const agent = new CacheAgent({ store: new MemoryStore(), agent: { bodyTimeout: 150 } })
  await stored(agent, '/dropped')
  const res = await request(`${origin.url}/dropped`, { dispatcher: agent })
  assert.match(String(res.headers['cache-status']), /^undici-cache; hit/)
  const failed = new Promise<Error>((resolve) => res.body.on('error', resolve))
  await within(3000, 'close()', agent.close())
  assert.equal(((await failed) as { code?: string }).code, 'UND_ERR_BODY_TIMEOUT')
})

test("a request's own bodyTimeout wins: 0 waits for ever, a short one fails", async () => {
  const agent = new CacheAgent({ store: new MemoryStore(), agent: { bodyTimeout: 150 } })
  try {
    await stored(agent, '/own')
    const patient = pausedGet(agent, '/own', 0)
    const hasty = pausedGet(agent, '/own', 50)
    assert.equal((await within(3000, 'the hasty hit', hasty.done)).error?.name, 'BodyTimeoutError')
    await sleep(400)
    patient.resume()
    assert.deepEqual(await within(3000, 'the patient hit', patient.done), { bytes: BODY.length })
  } finally {
    await agent.close()
  }
})

test('a hit resumed within the timeout is served whole', async () => {
  const agent = new CacheAgent({ store: new MemoryStore() })
  try {
    await stored(agent, '/resumed')
    const paused = pausedGet(agent, '/resumed', 300)
    await sleep(100)
    paused.resume()
    assert.deepEqual(await within(3000, 'the resumed hit', paused.done), { bytes: BODY.length })
  } finally {
    await agent.close()
  }
})
