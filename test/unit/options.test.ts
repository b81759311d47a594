import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Agent } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { cacheInterceptor } from '../../lib/interceptor.js'
import { resolveRequestOptions } from '../../lib/options.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'

test('bad interceptor options throw an error naming the option', () => {
  const store = new MemoryStore()
  const cases: [unknown, string, RegExp][] = [
    [null, 'TypeError', /options must be an object/],
    [{ store: {} }, 'TypeError', /option store/],
    [{ store, shared: 'yes' }, 'TypeError', /option shared/],
    [{ store, methods: 'GET' }, 'TypeError', /option methods/],
    [{ store, methods: ['POST'] }, 'RangeError', /option methods .*POST/],
    [{ store, cacheStatus: '' }, 'TypeError', /option cacheStatus/],
    [{ store, cacheStatus: 'has space' }, 'TypeError', /option cacheStatus/],
    [{ stor: store }, 'TypeError', /^cacheInterceptor has no option stor$/],
    [{ store, agent: {} }, 'TypeError', /^cacheInterceptor has no option agent$/],
  ]
  for (const [options, name, message] of cases) {
    assert.throws(() => cacheInterceptor(options as never), { name, message }, JSON.stringify(options))
  }
})

test('bad per-request cache options throw an error naming the option', () => {
  assert.equal(resolveRequestOptions(undefined), undefined)
  assert.deepEqual(resolveRequestOptions({ ttl: 0, key: 'k', bypass: false, onlyIfCached: true }), {
    ttl: 0,
    key: 'k',
    bypass: false,
    onlyIfCached: true,
  })
  const cases: [unknown, string, RegExp][] = [
    ['x', 'TypeError', /option cache must be an object/],
    [[], 'TypeError', /option cache must be an object/],
    [{ ttl: '5' }, 'RangeError', /cache\.ttl/],
    [{ key: '' }, 'TypeError', /cache\.key/],
    [{ bypass: 1 }, 'TypeError', /cache\.bypass/],
    [{ onlyIfCached: 'yes' }, 'TypeError', /cache\.onlyIfCached/],
    [{ tll: 30 }, 'TypeError', /^request option cache has no option tll$/],
  ]
  for (const [options, name, message] of cases) {
    assert.throws(() => resolveRequestOptions(options), { name, message }, JSON.stringify(options))
  }
})

test('CacheAgent validates its options and composes onto a given dispatcher', async () => {
  assert.throws(() => new CacheAgent(null as never), { name: 'TypeError', message: /CacheAgent options/ })
  assert.throws(() => new CacheAgent([] as never), { name: 'TypeError', message: /CacheAgent options/ })
  assert.throws(() => cacheInterceptor([] as never), {
    name: 'TypeError',
    message: /cacheInterceptor options must be an object/,
  })
  assert.throws(() => new CacheAgent({ store: new MemoryStore(), agent: 5 as never }), {
    name: 'TypeError',
    message: /option agent/,
  })
  const inner = new Agent()
  const agent = new CacheAgent({ store: new MemoryStore(), agent: inner })
  await new Promise<void>((resolve) => agent.close(resolve))
  assert.equal(inner.closed, true)
  const destroyed = new Agent()
  const other = new CacheAgent({ store: new MemoryStore(), agent: destroyed })
  await new Promise<void>((resolve) => other.destroy(null, resolve))
  assert.equal(destroyed.destroyed, true)
  const third = new CacheAgent({ store: new MemoryStore() })
  await third.destroy()
})

test('CacheAgent without a store creates a SqliteStore at UNDICI_CACHE_PATH and closes it', async () => {
  const { mkdtempSync } = await import('node:fs')
  const { join } = await import('node:path')
  const { tmpdir } = await import('node:os')
  const { existsSync } = await import('node:fs')
  const file = join(mkdtempSync(join(tmpdir(), 'undici-cache-agent-')), 'nested', 'cache.db')
  const previous = process.env.UNDICI_CACHE_PATH
  process.env.UNDICI_CACHE_PATH = file
  try {
    // invalid options, a misspelt option among them: an error naming it, and no file made
    assert.throws(() => new CacheAgent({ stor: new MemoryStore() } as never), {
      name: 'TypeError',
      message: /^CacheAgent has no option stor$/,
    })
    assert.throws(() => new CacheAgent({ shared: 'yes' } as never), {
      name: 'TypeError',
      message: /option shared/,
    })
    // options checked after the store's own, and the inner Agent's, which undici checks
    const invalid: [unknown, RegExp][] = [
      [{ methods: 'GET' }, /option methods/],
      [{ methods: ['POST'] }, /option methods/],
      [{ cacheStatus: '' }, /option cacheStatus/],
      [{ cdnCacheControl: 5 }, /option cdnCacheControl/],
      [{ shared: false, cdnCacheControl: true }, /option cdnCacheControl/],
      [{ agent: { connect: 5 } }, /connect/],
    ]
    for (const [options, message] of invalid)
      assert.throws(() => new CacheAgent(options as never), { message })
    assert.throws(() => cacheInterceptor({ methods: ['PUT'] } as never), /option methods/)
    assert.equal(existsSync(file), false)
    const agent = new CacheAgent()
    assert.equal(existsSync(file), true)
    await agent.close()
  } finally {
    if (previous === undefined) delete process.env.UNDICI_CACHE_PATH
    else process.env.UNDICI_CACHE_PATH = previous
  }
})
