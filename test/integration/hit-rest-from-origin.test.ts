import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { VanishingBodies } from '../helpers/async-store.js'
import { makeAgent, tempDir } from '../helpers/client.js'
import { type Origin, startOrigin } from '../helpers/origin.js'

const KiB = 1024
const MiB = 1024 * KiB
const BODY = Buffer.from(Array.from({ length: 4 * MiB }, (_, i) => (i * 7) % 253))
const GONE_AFTER_BYTES = MiB
const sha = (buffer: Buffer) => createHash('sha256').update(buffer).digest('hex')

let origin: Origin
before(async () => {
  origin = await startOrigin((req, res) => {
    const url = req.url ?? ''
    const etag = url.startsWith('/weak') ? 'W/"v1"' : '"v1"'
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
    const headers = { 'cache-control': 'max-age=60', etag }
    if (range && req.headers['if-range'] === etag) {
      const fromByte = Number(range[1])
      const contentRange = `bytes ${fromByte}-${BODY.length - 1}/${BODY.length}`
      res.writeHead(206, { ...headers, 'content-range': contentRange })
      return void res.end(BODY.subarray(fromByte))
    }
    res.writeHead(200, { ...headers, 'content-length': String(BODY.length) })
    res.end(BODY)
  })
})
after(() => origin.close())

const seen = (path: string) =>
  origin.requests.filter((r) => r.url === path).map((r) => [r.headers.range, r.headers['if-range']])

/** One GET read to the end: its Cache-Status and body, or the error its body failed with. */
async function get(agent: Parameters<typeof request>[1] extends infer O ? O : never, url: string) {
  const res = await request(url, agent)
  const chunks: Buffer[] = []
  try {
    for await (const chunk of res.body) chunks.push(chunk as Buffer)
    return { status: String(res.headers['cache-status']), body: Buffer.concat(chunks) }
  } catch (error) {
    return { status: String(res.headers['cache-status']), error: error as Error }
  }
}

describe('a hit whose stored body fails midway', () => {
  test('is finished from the origin: a Range request with If-Range from where the store stopped', async () => {
    const cache = makeAgent(new VanishingBodies(GONE_AFTER_BYTES, 64 * KiB))
    const url = `${origin.url}/strong`
    await get({ dispatcher: cache.agent }, url)
    const hit = await get({ dispatcher: cache.agent }, url)
    assert.equal(hit.error, undefined)
    assert.match(hit.status, /^undici-cache; hit; ttl=\d+$/)
    assert.equal(sha(hit.body ?? Buffer.alloc(0)), sha(BODY))
    assert.deepEqual(seen('/strong'), [
      [undefined, undefined],
      [`bytes=${GONE_AFTER_BYTES}-`, '"v1"'],
    ])
    await cache.close()
  })

  test('without a strong ETag, or with only-if-cached, the caller gets the error, never a short body', async () => {
    const cache = makeAgent(new VanishingBodies(GONE_AFTER_BYTES, 64 * KiB))
    await get({ dispatcher: cache.agent }, `${origin.url}/weak`)
    const weak = await get({ dispatcher: cache.agent }, `${origin.url}/weak`)
    assert.match(String(weak.error?.message), /gone/)
    await get({ dispatcher: cache.agent }, `${origin.url}/only-if-cached`)
    const onlyIfCached = await get(
      { dispatcher: cache.agent, headers: { 'cache-control': 'only-if-cached' } },
      `${origin.url}/only-if-cached`,
    )
    assert.match(String(onlyIfCached.error?.message), /gone/)
    assert.equal(seen('/weak').length, 1)
    assert.equal(seen('/only-if-cached').length, 1)
    await cache.close()
  })

  test('a SqliteStore entry in chunk rows invalidated (a POST) while a hit reads it', async () => {
    const store = new SqliteStore({
      path: join(tempDir(), 'rows.db'),
      bodyFiles: false,
      chunkBytes: 64 * KiB,
      hotBytes: 0,
    })
    const cache = makeAgent(store)
    const url = `${origin.url}/rows`
    await get({ dispatcher: cache.agent }, url)
    const res = await request(url, { dispatcher: cache.agent })
    const chunks: Buffer[] = []
    for await (const chunk of res.body) {
      chunks.push(chunk as Buffer)
      if (chunks.length === 1)
        await (await request(url, { dispatcher: cache.agent, method: 'POST' })).body.dump()
    }
    assert.match(String(res.headers['cache-status']), /^undici-cache; hit; ttl=\d+$/)
    assert.equal(sha(Buffer.concat(chunks)), sha(BODY))
    const methods = origin.requests.filter((r) => r.url === '/rows').map((r) => r.method)
    assert.deepEqual(methods, ['GET', 'POST', 'GET'])
    const [, , rest] = seen('/rows')
    assert.match(String(rest?.[0]), /^bytes=\d+-$/)
    assert.equal(rest?.[1], '"v1"')
    await cache.close()
  })
})
