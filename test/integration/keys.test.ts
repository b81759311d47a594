import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Dispatcher } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

let origin: Origin
let agent: CacheAgent

before(async () => {
  // routes on the raw request target and the Host field, as virtual hosts and many routers do
  origin = await startOrigin((req, res) =>
    reply(res, 200, { 'cache-control': 'max-age=300' }, `${req.headers.host} ${req.url}`),
  )
  agent = new CacheAgent({ store: new MemoryStore() })
})
after(async () => {
  await agent.close()
  await origin.close()
})

async function get(
  path: string,
  headers: Record<string, string> = {},
  method: Dispatcher.HttpMethod = 'GET',
) {
  const res = await agent.request({ origin: origin.url, path, method, headers })
  return { body: await res.body.text(), status: res.headers['cache-status'] }
}

test('requests to one address for two hosts (Host field) are two entries, and a write invalidates its own host only', async () => {
  const port = new URL(origin.url).port
  assert.equal((await get('/page', { host: 'a.test' })).body, 'a.test /page')
  assert.equal((await get('/page', { host: 'b.test' })).body, 'b.test /page')
  assert.equal(origin.count('/page'), 2)
  const hit = await get('/page', { host: 'b.test' })
  assert.deepEqual(hit.body, 'b.test /page')
  assert.match(String(hit.status), /^undici-cache; hit/)
  assert.equal((await get('/page', { host: `127.0.0.1:${port}` })).body, `127.0.0.1:${port} /page`)
  assert.match(
    String((await get('/page')).status),
    /^undici-cache; hit/,
    'the address itself as Host is one key',
  )
  await get('/page', { host: 'a.test' }, 'POST')
  assert.equal((await get('/page', { host: 'a.test' })).status, 'undici-cache; fwd=miss; stored')
  assert.match(String((await get('/page', { host: 'b.test' })).status), /^undici-cache; hit/)
  assert.equal(origin.count('/page'), 5)
})

test('a path the origin sees as another target than its normalised form is not cached', async () => {
  for (const [sent, other] of [
    ['/static/..\\api', '/api'],
    ['/a/../b', '/b'],
    ['/x#frag', '/x'],
    ['/p?', '/p'],
  ]) {
    const first = await get(sent as string)
    assert.equal(first.body, `127.0.0.1:${new URL(origin.url).port} ${sent}`)
    assert.equal(first.status, 'undici-cache; fwd=bypass')
    assert.equal(
      (await get(other as string)).status,
      'undici-cache; fwd=miss; stored',
      `${other} after ${sent}`,
    )
  }
})

test('an unsafe request to a path URL parsing changes invalidates the parsed target', async () => {
  for (const [sent, target] of [
    ['/k/./v', '/k/v'],
    ['/k/x/../w', '/k/w'],
  ]) {
    await get(target as string)
    assert.match(String((await get(target as string)).status), /^undici-cache; hit/)
    await get(sent as string, {}, 'PUT')
    assert.equal(
      (await get(target as string)).status,
      'undici-cache; fwd=miss; stored',
      `${target} after ${sent}`,
    )
  }
})
