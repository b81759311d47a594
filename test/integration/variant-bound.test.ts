import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { MAX_VARIANTS_PER_KEY } from '../../lib/stores/store.js'
import { makeAgent, send, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

let origin: Origin

before(async () => {
  // varies on a header each client sets at will; the first request of a burst is not storable
  origin = await startOrigin((req, res) => {
    const id = String(req.headers['x-id'])
    const cacheControl = id === 'lead' ? 'no-store' : 'max-age=300'
    reply(res, 200, { 'cache-control': cacheControl, vary: 'x-id' }, `for ${id}`)
  })
})
after(() => origin.close())

for (const kind of storeKinds) {
  describe(`variants of one URL are bounded (${kind.name})`, () => {
    test(`storing variant ${MAX_VARIANTS_PER_KEY + 1} of a URL drops the oldest`, async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}/one-by-one-${kind.name}`
      const get = (id: number | string) => send(cache.agent, url, { headers: { 'x-id': String(id) } })
      try {
        for (let id = 0; id <= MAX_VARIANTS_PER_KEY; id++) {
          assert.match(String((await get(id)).headers['cache-status']), /miss; stored$/, `variant ${id}`)
        }
        assert.equal((await cache.store.get(url)).length, MAX_VARIANTS_PER_KEY)
        assert.match(String((await get(MAX_VARIANTS_PER_KEY)).headers['cache-status']), /^undici-cache; hit/)
        assert.match(String((await get(1)).headers['cache-status']), /^undici-cache; hit/)
        const dropped = await get(0)
        assert.deepEqual(
          [dropped.body, dropped.headers['cache-status']],
          ['for 0', 'undici-cache; fwd=vary-miss; stored'],
        )
      } finally {
        await cache.close()
      }
    })

    test('a burst of requests for new variants behind an unstorable one stays within the bound', async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}/burst-${kind.name}`
      try {
        const ids = ['lead', ...Array.from({ length: 3 * MAX_VARIANTS_PER_KEY }, (_, id) => id)]
        const replies = await Promise.all(
          ids.map((id) => send(cache.agent, url, { headers: { 'x-id': String(id) } })),
        )
        assert.deepEqual(
          replies.map((r) => r.body),
          ids.map((id) => `for ${id}`),
        )
        assert.equal((await cache.store.get(url)).length, MAX_VARIANTS_PER_KEY)
      } finally {
        await cache.close()
      }
    })
  })
}
