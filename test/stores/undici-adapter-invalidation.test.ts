/**
 * toUndiciStore's deletes and invalidations: undici's delete after a 304 held while a body is read,
 * responses to requests sent before an invalidation (of this adapter or another connection's) not stored.
 */
import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { Agent, interceptors } from 'undici'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { CacheStore } from '../../lib/stores/store.js'
import { toUndiciStore } from '../../lib/stores/undici-store-adapter.js'
import { send, sleep, tempDir } from '../helpers/client.js'
import { reply, startOrigin } from '../helpers/origin.js'
import { LARGE_BODY, origin, startAdapterOrigin, undiciCache, writeValue } from './undici-adapter-setup.js'

before(() => startAdapterOrigin())
after(() => origin.close())

test('what undici deletes after a 304 while its body is read is expired in the store: another adapter on the file does not serve it', async () => {
  const file = path.join(tempDir(), 'held.db')
  const first = undiciCache(new SqliteStore({ path: file, hotBytes: 0 }))
  const target = '/held-304?suite=two-adapters'
  const de = { 'accept-language': 'de' }
  await first.sendAndSettle(target, { headers: de })
  const held = await first.revalidateUnread(target, de)
  // another variant written while the body is open: the delete that waits for it is not needed then
  await first.sendAndSettle(target, { headers: { 'accept-language': 'fr' } })
  assert.equal(await held.body.text(), `de ${LARGE_BODY}`)
  const second = undiciCache(new SqliteStore({ path: file, hotBytes: 0 }))
  const before = origin.count(target)
  assert.equal((await send(second.dispatcher, origin.url + target, { headers: de })).body, `de ${LARGE_BODY}`)
  assert.equal(origin.count(target), before + 1)
  // a delete held for a body still being read leaves what another adapter stored since
  const heldAgain = await first.revalidateUnread(target, de)
  await send(second.dispatcher, origin.url + target, { headers: de })
  assert.equal(await heldAgain.body.text(), `de ${LARGE_BODY}`)
  await sleep(50)
  const stored = origin.count(target)
  assert.equal((await send(second.dispatcher, origin.url + target, { headers: de })).body, `de ${LARGE_BODY}`)
  assert.equal(origin.count(target), stored, 'served from the store: the held delete left it')
  await first.close()
  await second.close()
})

test("undici's delete after a 304, held for a body in chunk rows: a sweep meanwhile does not cut that body", async () => {
  const file = path.join(tempDir(), 'held-rows.db')
  const store = new SqliteStore({
    path: file,
    hotBytes: 0,
    bodyFiles: false,
    chunkBytes: 4096,
    sweepIntervalMs: 0,
  })
  const cache = undiciCache(store)
  const target = '/held-304?suite=rows'
  const de = { 'accept-language': 'de' }
  await cache.sendAndSettle(target, { headers: de })
  const held = await cache.revalidateUnread(target, de)
  store.sweep()
  assert.equal(await held.body.text(), `de ${LARGE_BODY}`)
  await cache.close()
})

test('a response to a request whose lookup was forgotten (10 000 other URLs since) is not stored after an invalidation', async () => {
  const adapter = toUndiciStore(new MemoryStore())
  const key = { origin: 'http://127.0.0.1:1', method: 'GET', path: '/forgotten' }
  const value = {
    statusCode: 200,
    statusMessage: 'OK',
    headers: {},
    cachedAt: 1,
    staleAt: 2,
    deleteAt: Date.now() + 60_000,
  }
  await adapter.get(key)
  await sleep(2)
  await adapter.delete({ ...key, method: 'POST' })
  for (let i = 0; i < 10_001; i++) await adapter.get({ ...key, path: `/other-${i}` })
  assert.equal(adapter.createWriteStream(key, value), undefined)
  // a lookup made since counts: that request was sent after the invalidation
  await sleep(2)
  await adapter.get(key)
  await writeValue(adapter, key, value, 'after')
})

for (const failing of ['update', 'get'] as const)
  test(`undici's delete held after a 304 is made when marking the entry deleted fails (${failing}), even with another variant written meanwhile`, async () => {
    const sqlite = new SqliteStore({ path: path.join(tempDir(), `marks-${failing}.db`), hotBytes: 0 })
    /** Gets counted from when armed: the marking's is the second (after the revalidation's lookup). */
    let getsArmed: number | undefined
    const faulty: CacheStore = {
      get: (key) => {
        if (getsArmed !== undefined && ++getsArmed === 2 && failing === 'get') throw new Error('get failed')
        return sqlite.get(key)
      },
      put: (key, meta, sizeBytes) => sqlite.put(key, meta, sizeBytes),
      update: (key, id, meta) => {
        if (failing === 'update') throw new Error('update failed')
        sqlite.update(key, id, meta)
      },
      delete: (key) => sqlite.delete(key),
      close: () => sqlite.close(),
    }
    const cache = undiciCache(faulty)
    const target = `/held-304?suite=marks-${failing}`
    const de = { 'accept-language': 'de' }
    await cache.sendAndSettle(target, { headers: de })
    getsArmed = 0
    const held = await cache.revalidateUnread(target, de)
    getsArmed = undefined
    await cache.sendAndSettle(target, { headers: { 'accept-language': 'fr' } })
    assert.equal(await held.body.text(), `de ${LARGE_BODY}`)
    const deStored = () =>
      sqlite
        .get(`undici ${origin.url}${target}`)
        .filter((entry) => entry.varyValues['accept-language'] === 'de')
    for (let tries = 0; deStored().length > 0; tries++) {
      if (tries === 100) assert.fail('the entry undici deleted is still stored')
      await sleep(10)
    }
    await cache.close()
  })

test("through undici's interceptor, a response whose request started before another connection's invalidation is not stored", async () => {
  let version = 0
  let releaseHeaders: () => void = () => {}
  const held = new Promise<void>((resolve) => {
    releaseHeaders = resolve
  })
  const slow = await startOrigin(async (req, res) => {
    if (req.method === 'POST') {
      version += 1
      return reply(res, 204, {})
    }
    const answered = version
    if (req.headers['x-hold'] === '1') await held
    reply(res, 200, { 'cache-control': 'max-age=600' }, `v${answered}`)
  })
  const file = path.join(tempDir(), 'cache.db')
  const [storeA, storeB] = [new SqliteStore({ path: file }), new SqliteStore({ path: file })]
  const agentA = new Agent()
  const agentB = new Agent()
  const viaA = agentA.compose(interceptors.cache({ store: toUndiciStore(storeA) }))
  const viaB = agentB.compose(interceptors.cache({ store: toUndiciStore(storeB) }))
  try {
    const first = send(viaA, `${slow.url}/doc`, { headers: { 'x-hold': '1' } })
    await sleep(50)
    await send(viaB, `${slow.url}/doc`, { method: 'POST' })
    releaseHeaders()
    assert.equal((await first).body, 'v0')
    await sleep(50)
    const again = await send(viaA, `${slow.url}/doc`)
    assert.equal(again.body, 'v1')
    assert.equal(slow.count('/doc'), 3)
  } finally {
    await agentA.close()
    await agentB.close()
    storeA.close()
    storeB.close()
    await slow.close()
  }
})
