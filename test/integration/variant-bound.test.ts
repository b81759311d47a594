import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { MAX_VARIANTS_PER_KEY } from '../../lib/exchange.js'
import { makeAgent, send, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

let origin: Origin

before(async () => {
  // varies on a header each client sets at will
  origin = await startOrigin((req, res) =>
    reply(res, 200, { 'cache-control': 'max-age=300', vary: 'x-id' }, `for ${req.headers['x-id']}`),
  )
})
after(() => origin.close())

for (const kind of storeKinds) {
  describe(`variants of one URL are bounded (${kind.name})`, () => {
    test(`a response that would be variant ${MAX_VARIANTS_PER_KEY + 1} of its URL is not stored`, async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}/${kind.name}`
      const get = (id: number) => send(cache.agent, url, { headers: { 'x-id': String(id) } })
      try {
        for (let id = 0; id < MAX_VARIANTS_PER_KEY; id++) {
          assert.match(String((await get(id)).headers['cache-status']), /miss; stored$/, `variant ${id}`)
        }
        for (let round = 0; round < 2; round++) {
          const extra = await get(MAX_VARIANTS_PER_KEY)
          assert.equal(extra.body, `for ${MAX_VARIANTS_PER_KEY}`)
          assert.equal(extra.headers['cache-status'], 'undici-cache; fwd=vary-miss; detail=too-many-variants')
        }
        const kept = await get(7)
        assert.equal(kept.body, 'for 7')
        assert.match(String(kept.headers['cache-status']), /^undici-cache; hit/)
        assert.equal((await cache.store.get(url)).length, MAX_VARIANTS_PER_KEY)
        assert.equal(origin.count(`/${kind.name}`), MAX_VARIANTS_PER_KEY + 2)
      } finally {
        await cache.close()
      }
    })
  })
}
