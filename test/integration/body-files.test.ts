import assert from 'node:assert/strict'
import diagnosticsChannel from 'node:diagnostics_channel'
import fs, { readFileSync, rmSync, truncateSync } from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
import path from 'node:path'
import { after, before, beforeEach, test } from 'node:test'
import { type Dispatcher, request } from 'undici'
import { storeErrorChannel } from '../../lib/diagnostics.js'
import { FILE_READ_BYTES } from '../../lib/stores/sqlite-body-files.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { within } from '../helpers/caller.js'
import { makeAgent, tempDir } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'
import { bodyFileNames, bodyFileOf, patternBody } from '../stores/helpers.js'

/** Longer than SqliteStore's default chunkBytes (256 KiB), so kept as a body file; spans 3 reads. */
const BIG = patternBody(2 * FILE_READ_BYTES + 12_345, 7)

let origin: Origin
let dbPath: string
/** Told when a revalidation of a `/stale-` path reaches the origin, before its 503 is sent. */
let onStaleRevalidation: ((path: string) => void) | undefined
let cache: ReturnType<typeof makeAgent>
const storeErrors: { operation: string; error: Error }[] = []
const onStoreError = (message: unknown) => storeErrors.push(message as { operation: string; error: Error })

before(async () => {
  origin = await startOrigin((req, res) => {
    if (req.url === '/revalidated') {
      // revalidated on every request, answered 304 (RFC 9111 §4.3.4)
      const headers = { 'cache-control': 'max-age=0', etag: '"big"' }
      if (req.headers['if-none-match'] === '"big"') return reply(res, 304, headers)
      return reply(res, 200, headers, BIG as unknown as string)
    }
    if (req.url?.startsWith('/stale-')) {
      // stale at once, served stale when a revalidation fails (RFC 5861 §4); revalidations fail
      if (req.headers['if-none-match'] === undefined) {
        const headers = { 'cache-control': 'max-age=0, stale-if-error=600', etag: '"big"' }
        return reply(res, 200, headers, BIG as unknown as string)
      }
      if (req.url === '/stale-reset') return req.socket.destroy()
      onStaleRevalidation?.(req.url ?? '')
      return reply(res, 503, {}, 'unavailable')
    }
    reply(res, 200, { 'cache-control': 'max-age=600', etag: '"big"' }, BIG as unknown as string)
  })
  dbPath = path.join(tempDir(), 'cache.db')
  // hotBytes: 0, so every hit reads its body file (the hot tier would keep these bodies in memory).
  cache = makeAgent(new SqliteStore({ path: dbPath, hotBytes: 0 }))
  diagnosticsChannel.subscribe(storeErrorChannel.name, onStoreError)
})
after(async () => {
  diagnosticsChannel.unsubscribe(storeErrorChannel.name, onStoreError)
  await cache.close()
  await origin.close()
})
beforeEach(() => {
  storeErrors.length = 0
})

/** One GET whose body is read whole as bytes. */
async function getBytesFrom(dispatcher: Dispatcher, url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { dispatcher, headers })
  const body = Buffer.from(await res.body.arrayBuffer())
  return { status: res.statusCode, headers: res.headers, body }
}

const getBytes = (url: string, headers: Record<string, string> = {}) =>
  getBytesFrom(cache.agent, url, headers)

const bodyFiles = () => bodyFileNames(dbPath)

/** The lengths of the reads `fs.read` was asked for while `run` ran (body files are read so). */
async function countingFileReads(run: () => Promise<void>): Promise<number[]> {
  const lengths: number[] = []
  const realRead = fs.read
  fs.read = ((...args: unknown[]) => {
    lengths.push(args[3] as number)
    return (realRead as (...args: unknown[]) => void)(...args)
  }) as typeof fs.read
  syncBuiltinESMExports()
  try {
    await run()
  } finally {
    fs.read = realRead
    syncBuiltinESMExports()
  }
  return lengths
}

test('a body longer than one chunk is stored as a file and served from it byte for byte', async () => {
  const url = `${origin.url}/served`
  const miss = await getBytes(url)
  assert.equal(miss.headers['cache-status'], 'undici-cache; fwd=miss; stored')
  assert.ok(miss.body.equals(BIG))
  assert.equal(bodyFiles().length, 1)
  const hit = await getBytes(url)
  assert.match(String(hit.headers['cache-status']), /^undici-cache; hit; ttl=\d+$/)
  assert.equal(hit.headers['content-length'], String(BIG.length))
  assert.ok(hit.body.equals(BIG))
  assert.equal(origin.count('/served'), 1)
})

test('a Range across the boundary of two file reads gets exactly those bytes (RFC 9110 §14.2)', async () => {
  const url = `${origin.url}/ranged`
  await getBytes(url)
  const start = FILE_READ_BYTES - 10
  const end = FILE_READ_BYTES + 9
  const part = await getBytes(url, { range: `bytes=${start}-${end}` })
  assert.equal(part.status, 206)
  assert.equal(part.headers['content-range'], `bytes ${start}-${end}/${BIG.length}`)
  assert.ok(part.body.equals(BIG.subarray(start, end + 1)))
  const tail = await getBytes(url, { range: 'bytes=-5' })
  assert.ok(tail.body.equals(BIG.subarray(BIG.length - 5)))
  assert.equal(origin.count('/ranged'), 1)
})

test('a Range reads only its own bytes from the body file, not the body before it nor a piece after it', async () => {
  const url = `${origin.url}/ranged-reads`
  await getBytes(url)
  const readBytes = await countingFileReads(async () => {
    const tail = await getBytes(url, { range: 'bytes=-5' })
    assert.equal(tail.status, 206)
    assert.ok(tail.body.equals(BIG.subarray(BIG.length - 5)))
    const middle = await getBytes(url, { range: `bytes=${FILE_READ_BYTES - 10}-${FILE_READ_BYTES + 9}` })
    assert.ok(middle.body.equals(BIG.subarray(FILE_READ_BYTES - 10, FILE_READ_BYTES + 10)))
  })
  assert.deepEqual(readBytes, [5, 20])
  const whole = await countingFileReads(async () => assert.ok((await getBytes(url)).body.equals(BIG)))
  assert.deepEqual(whole, [FILE_READ_BYTES, FILE_READ_BYTES, BIG.length - 2 * FILE_READ_BYTES])
  assert.equal(origin.count('/ranged-reads'), 1)
})

test('a body file removed or cut short under the cache: the request goes to the origin and is stored again', async () => {
  const url = `${origin.url}/vanishing`
  await getBytes(url)
  for (const damage of ['removed', 'cut short'] as const) {
    const before = origin.count('/vanishing')
    for (const name of bodyFiles()) {
      const file = bodyFileOf(dbPath, name)
      if (damage === 'removed') rmSync(file)
      else truncateSync(file, 1000)
    }
    const recovered = await getBytes(url)
    assert.equal(recovered.status, 200)
    assert.equal(recovered.headers['cache-status'], 'undici-cache; fwd=miss; stored')
    assert.ok(recovered.body.equals(BIG))
    assert.equal(origin.count('/vanishing') - before, 1)
    assert.deepEqual(
      storeErrors.map(({ operation }) => operation),
      ['read'],
    )
    const again = await getBytes(url)
    assert.match(String(again.headers['cache-status']), /^undici-cache; hit/)
    assert.ok(again.body.equals(BIG))
    assert.equal(origin.count('/vanishing') - before, 1)
    storeErrors.length = 0
  }
})

test('stale-if-error with its body file gone: the request is sent again without conditions', {
  timeout: 10_000,
}, async () => {
  for (const failure of ['503', 'reset']) {
    const path = `/stale-${failure}`
    await getBytes(`${origin.url}${path}`)
    for (const name of bodyFiles()) rmSync(bodyFileOf(dbPath, name))
    const res = await getBytes(`${origin.url}${path}`)
    assert.equal(res.status, 200)
    assert.equal(res.headers['cache-status'], 'undici-cache; fwd=stale; stored')
    assert.ok(res.body.equals(BIG))
    const sent = origin.requests.filter((seen) => seen.url === path)
    assert.deepEqual(
      sent.map((seen) => seen.headers['if-none-match'] ?? 'unconditional'),
      ['unconditional', '"big"', 'unconditional'],
    )
    assert.deepEqual(
      storeErrors.map(({ operation }) => operation),
      ['read'],
    )
    storeErrors.length = 0
  }
})

test('a stale entry removed while its revalidation is at the origin: sent again without conditions', async () => {
  // chunk rows are read lazily: the body opens, and would fail on its first read
  const rowsPath = path.join(tempDir(), 'rows.db')
  const rowsCache = makeAgent(new SqliteStore({ path: rowsPath, hotBytes: 0, bodyFiles: false }))
  const otherProcess = new SqliteStore({ path: rowsPath })
  onStaleRevalidation = (url) => otherProcess.delete(`${origin.url}${url}`)
  try {
    const url = `${origin.url}/stale-removed`
    await getBytesFrom(rowsCache.agent, url)
    const res = await getBytesFrom(rowsCache.agent, url)
    assert.equal(res.status, 200)
    assert.equal(res.headers['cache-status'], 'undici-cache; fwd=stale; stored')
    assert.ok(res.body.equals(BIG))
    const sent = origin.requests.filter((seen) => seen.url === '/stale-removed')
    assert.deepEqual(
      sent.map((seen) => seen.headers['if-none-match'] ?? 'unconditional'),
      ['unconditional', '"big"', 'unconditional'],
    )
  } finally {
    onStaleRevalidation = undefined
    otherProcess.close()
    await rowsCache.close()
  }
})

test('only-if-cached with its body file gone answers 504 without asking the origin (RFC 9111 §5.2.1.7)', async () => {
  const url = `${origin.url}/only-cached`
  await getBytes(url)
  for (const name of bodyFiles()) rmSync(bodyFileOf(dbPath, name))
  const res = await getBytes(url, { 'cache-control': 'only-if-cached' })
  assert.equal(res.status, 504)
  assert.equal(res.body.length, 0)
  assert.equal(origin.count('/only-cached'), 1)
  assert.match(storeErrors[0]?.error.message ?? '', /is gone \(replaced or evicted while read\)/)
})

test('with the hot tier (the default), a body file read whole by its second hit is served from memory, ranges too', async () => {
  const warmPath = path.join(tempDir(), 'warm.db')
  const warm = makeAgent(new SqliteStore({ path: warmPath }))
  try {
    const url = `${origin.url}/warm`
    const get = async (headers: Record<string, string> = {}) => {
      const res = await request(url, { dispatcher: warm.agent, headers })
      return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) }
    }
    assert.equal((await get()).headers['cache-status'], 'undici-cache; fwd=miss; stored')
    // a key is kept from its second read from the file: that hit reads it whole into memory
    assert.ok((await get()).body.equals(BIG), 'the first hit reads the file')
    assert.ok((await get()).body.equals(BIG), 'the second hit reads the file whole, kept')
    for (const name of bodyFileNames(warmPath)) rmSync(bodyFileOf(warmPath, name))
    const hit = await get()
    assert.match(String(hit.headers['cache-status']), /^undici-cache; hit; ttl=\d+$/)
    assert.ok(hit.body.equals(BIG))
    const start = FILE_READ_BYTES - 10
    const part = await get({ range: `bytes=${start}-${FILE_READ_BYTES + 9}` })
    assert.equal(part.status, 206)
    assert.ok(part.body.equals(BIG.subarray(start, FILE_READ_BYTES + 10)))
    assert.equal(origin.count('/warm'), 1)
    assert.deepEqual(storeErrors, [])
  } finally {
    await warm.close()
  }
})

/** Bytes this process has read through read(2) and the like (Linux). */
function bytesRead(): number {
  return Number(/^rchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))?.[1])
}
const readsProcIo = { skip: process.platform !== 'linux' && 'reads /proc/self/io' }

/** Runs `use` with a CacheAgent on a SqliteStore of its own, with the hot tier (the default), then closes it. */
async function withTieredAgent(name: string, use: (agent: Dispatcher, dbPath: string) => Promise<void>) {
  const dbPath = path.join(tempDir(), `${name}.db`)
  const cache = makeAgent(new SqliteStore({ path: dbPath }))
  try {
    await use(cache.agent, dbPath)
  } finally {
    await cache.close()
  }
}

test(
  'with the hot tier, hits on a body file not in memory yet follow one read of it; one that waits holds none',
  readsProcIo,
  () =>
    withTieredAgent('shared', async (agent, sharedPath) => {
      const url = `${origin.url}/shared`
      const get = async () =>
        Buffer.from(await (await request(url, { dispatcher: agent })).body.arrayBuffer())
      assert.ok((await get()).equals(BIG), 'stored')
      assert.ok((await get()).equals(BIG), "the key's first read from the file")
      const before = bytesRead()
      const waiting = await request(url, { dispatcher: agent })
      assert.match(String(waiting.headers['cache-status']), /^undici-cache; hit; ttl=\d+$/)
      const others = await within(
        5000,
        'hits beside one that waits',
        Promise.all([get(), get(), get(), get()]),
      )
      for (const body of others) assert.ok(body.equals(BIG))
      assert.ok(Buffer.from(await waiting.body.arrayBuffer()).equals(BIG))
      const readBytes = bytesRead() - before
      assert.ok(readBytes < 2 * BIG.length, `5 hits read ${readBytes} bytes, for a body of ${BIG.length}`)
      for (const name of bodyFileNames(sharedPath)) rmSync(bodyFileOf(sharedPath, name))
      assert.ok((await get()).equals(BIG), 'kept in memory')
      assert.equal(origin.count('/shared'), 1)
      assert.deepEqual(storeErrors, [])
    }),
)

test(
  'with the hot tier, a body file revalidated on every hit (304) is read once, then served from memory',
  readsProcIo,
  () =>
    withTieredAgent('revalidated', async (agent) => {
      const url = `${origin.url}/revalidated`
      const readsOfHits: number[] = []
      for (let i = 0; i < 6; i++) {
        const before = bytesRead()
        const res = await request(url, { dispatcher: agent })
        assert.ok(Buffer.from(await res.body.arrayBuffer()).equals(BIG))
        readsOfHits.push(bytesRead() - before)
        if (i > 0) assert.equal(res.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
      }
      assert.equal(origin.count('/revalidated'), 6)
      // the first two hits read the file (its URL's first read is noted, not kept); the others do not
      const laterBytes = readsOfHits.slice(3).reduce((total, bytes) => total + bytes, 0)
      assert.ok(laterBytes < BIG.length / 2, `the last 3 hits read ${laterBytes} bytes (${readsOfHits})`)
      assert.deepEqual(storeErrors, [])
    }),
)
