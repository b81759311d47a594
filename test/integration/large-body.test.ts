import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { type Dispatcher, request } from 'undici'
import type { CacheRequestOptions } from '../../lib/options.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { makeAgent, tempDir } from '../helpers/client.js'
import { type Origin, startOrigin } from '../helpers/origin.js'

const MiB = 1024 * 1024
const BODY_BYTES = 200 * MiB
const PIECE = Buffer.alloc(64 * 1024)
for (let i = 0; i < PIECE.length; i++) PIECE[i] = (i * 31) % 251

let origin: Origin
before(async () => {
  // The body is generated as it is sent, never allocated whole.
  origin = await startOrigin((_req, res) => {
    res.writeHead(200, {
      'cache-control': 'max-age=600',
      'content-length': String(BODY_BYTES),
      etag: '"big"',
    })
    let sent = 0
    const pump = () => {
      while (sent < BODY_BYTES) {
        sent += PIECE.length
        if (!res.write(PIECE)) return void res.once('drain', pump)
      }
      res.end()
    }
    pump()
  })
})
after(() => origin.close())

/** Downloads through the cache, hashing as it goes, and samples RSS growth meanwhile. */
async function download(dispatcher: Dispatcher, cache?: CacheRequestOptions) {
  const baseline = process.memoryUsage().rss
  let peak = baseline
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 20)
  const res = await request(`${origin.url}/big`, { dispatcher, ...(cache ? { cache } : {}) } as Parameters<
    typeof request
  >[1])
  const hash = createHash('sha256')
  let bytes = 0
  for await (const chunk of res.body) {
    hash.update(chunk)
    bytes += chunk.length
  }
  clearInterval(timer)
  return {
    bytes,
    sha: hash.digest('hex'),
    growthMiB: (peak - baseline) / MiB,
    cacheStatus: res.headers['cache-status'],
  }
}

test('a 200 MiB body is stored in SQLite and served back with bounded memory', async () => {
  const cache = makeAgent(new SqliteStore({ path: path.join(tempDir(), 'big.db') }))
  // A first pass without the cache grows the heap to its working size, as any download does;
  // what is measured next is what the cache adds.
  const raw = await download(cache.agent, { bypass: true })
  const stored = await download(cache.agent)
  const served = await download(cache.agent)
  assert.equal(stored.cacheStatus, 'undici-cache; fwd=miss; stored')
  assert.match(String(served.cacheStatus), /^undici-cache; hit/)
  assert.equal(stored.bytes, BODY_BYTES)
  assert.equal(served.bytes, BODY_BYTES)
  assert.equal(served.sha, stored.sha)
  assert.equal(origin.count('/big'), 2)
  assert.equal(raw.sha, stored.sha)
  console.log(
    `RSS growth: plain download ${raw.growthMiB.toFixed(1)} MiB, storing ${stored.growthMiB.toFixed(1)} MiB, serving ${served.growthMiB.toFixed(1)} MiB`,
  )
  assert.ok(stored.growthMiB < 64, `RSS grew ${stored.growthMiB.toFixed(1)} MiB while storing`)
  assert.ok(served.growthMiB < 64, `RSS grew ${served.growthMiB.toFixed(1)} MiB while serving`)
  await cache.close()
})
