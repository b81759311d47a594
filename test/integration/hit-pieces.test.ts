import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Dispatcher } from 'undici'
import { makeAgent, send, sleep, storeKinds } from '../helpers/client.js'
import { type Origin, startOrigin } from '../helpers/origin.js'

const KIB = 1024
/** Sent in four writes, a few milliseconds apart, so that it arrives in several socket reads. */
const BODY = Buffer.from(Array.from({ length: 64 * KIB }, (_, i) => i % 251))

let origin: Origin
before(async () => {
  origin = await startOrigin(async (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(BODY.length) })
    for (let offset = 0; offset < BODY.length; offset += 16 * KIB) {
      res.write(BODY.subarray(offset, offset + 16 * KIB))
      await sleep(5)
    }
    res.end()
  })
})
after(() => origin.close())

interface Delivered {
  status: number
  headers: Record<string, string | string[] | undefined>
  chunks: Buffer[]
}

/** Dispatches a GET with a new-API handler that records each onResponseData chunk. */
function dispatchRecording(dispatcher: Dispatcher, path: string): Promise<Delivered> {
  return new Promise((resolve, reject) => {
    const delivered: Delivered = { status: 0, headers: {}, chunks: [] }
    dispatcher.dispatch(
      { origin: origin.url, path, method: 'GET' },
      {
        onRequestStart: () => {},
        onResponseStart: (_controller, status, headers) => {
          delivered.status = status
          delivered.headers = headers
        },
        onResponseData: (_controller, chunk) => {
          delivered.chunks.push(chunk)
        },
        onResponseEnd: () => resolve(delivered),
        onResponseError: (_controller, error) => reject(error),
      },
    )
  })
}

// Node's Readable joins the buffers it holds into a new one when its reader asks (read()), so a hit
// served as the origin's socket chunks paid a 64 KiB copy on every hit: stores keep bodies in large pieces.
for (const kind of storeKinds) {
  test(`${kind.name}: a 64 KiB body that arrived in pieces is served on a hit as one chunk`, async () => {
    const cache = makeAgent(kind.make())
    const path = `/pieces-${kind.name}`
    const miss = await send(cache.agent, `${origin.url}${path}`)
    assert.equal(miss.body, BODY.toString())
    for (let hit = 0; hit < 2; hit++) {
      const delivered = await dispatchRecording(cache.agent, path)
      assert.equal(delivered.status, 200)
      assert.match(String(delivered.headers['cache-status']), /^undici-cache; hit/)
      assert.deepEqual(
        delivered.chunks.map((chunk) => chunk.length),
        [BODY.length],
      )
      assert.deepEqual(delivered.chunks[0], BODY)
    }
    assert.equal(origin.count(path), 1)
    await cache.close()
  })
}
