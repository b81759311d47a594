/** toUndiciStore's bodies: what undici's interceptor is handed for a hit, and when it is read. */
import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { request } from 'undici'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { tempDir } from '../helpers/client.js'
import { MEDIUM_BODY, origin, startAdapterOrigin, undiciCache } from './undici-adapter-setup.js'

before(() => startAdapterOrigin())
after(() => origin.close())

test('a hit whose body in chunk rows is removed before it is read still gets all of it: read whole at lookup (up to 1 MiB)', async () => {
  const store = new SqliteStore({
    path: path.join(tempDir(), 'rows.db'),
    hotBytes: 0,
    bodyFiles: false,
    chunkBytes: 4096,
  })
  const cache = undiciCache(store)
  const target = '/medium?suite=removed-unread'
  await cache.sendAndSettle(target)
  const hit = await request(origin.url + target, { dispatcher: cache.dispatcher })
  // another process's invalidation, say: the rows go while the hit is still unread
  await store.delete(`undici ${origin.url}${target}`)
  assert.equal(await hit.body.text(), MEDIUM_BODY)
  assert.equal(origin.count(target), 1, 'the second request was a hit')
  await cache.close()
})
