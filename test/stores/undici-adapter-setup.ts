/**
 * What the toUndiciStore tests share: the origin they ask (started by each file's before(), closed by
 * its after()), undici's cache interceptor over a store, and writing a value through the adapter.
 */
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { Agent, type Dispatcher, interceptors, request } from 'undici'
import type { CacheStore } from '../../lib/stores/store.js'
import { toUndiciStore, type UndiciCacheStore } from '../../lib/stores/undici-store-adapter.js'
import { send, sleep } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'
import { patternBody } from './helpers.js'

type UndiciKey = Parameters<UndiciCacheStore['get']>[0]
type UndiciValue = Parameters<UndiciCacheStore['createWriteStream']>[1]

/** Over toUndiciStore's 1 MiB whole-read limit: served as a stream, which undici's deletes wait for. */
export const LARGE_BODY = patternBody(900_000, 5).toString('base64')
/** Under that limit (but over a chunk row): read whole as the lookup answers. */
export const MEDIUM_BODY = patternBody(300_000, 5).toString('base64')

export let origin: Origin
export let slowVersion = 0
/** Starts `origin`, the origin of these tests, with its routes. */
export async function startAdapterOrigin() {
  origin = await startOrigin((req, res, seen) => {
    const url = new URL(seen.url, 'http://x')
    if (url.pathname === '/vary') {
      const language = req.headers['accept-language'] ?? 'none'
      return reply(res, 200, { 'cache-control': 'max-age=60', vary: 'accept-language' }, `lang ${language}`)
    }
    if (url.pathname === '/large') return reply(res, 200, { 'cache-control': 'max-age=60' }, LARGE_BODY)
    if (url.pathname === '/medium') return reply(res, 200, { 'cache-control': 'max-age=60' }, MEDIUM_BODY)
    if (url.pathname === '/etag') {
      if (req.headers['if-none-match'] === '"v1"') return reply(res, 304, { etag: '"v1"' })
      return reply(res, 200, { 'cache-control': 'no-cache', etag: '"v1"' }, LARGE_BODY)
    }
    if (url.pathname === '/slow-etag') {
      // a 304 held 200 ms; any other method answers at once
      const headers = { 'cache-control': 'no-cache', etag: '"v1"' }
      if (req.headers['if-none-match'] === '"v1"') return setTimeout(() => reply(res, 304, headers), 200)
      return reply(res, 200, headers, req.method === 'GET' ? LARGE_BODY : 'written')
    }
    if (url.pathname === '/slow-get') {
      if (req.method !== 'GET') {
        slowVersion += 1
        return reply(res, 200, {}, 'written')
      }
      const answered = slowVersion
      return setTimeout(() => reply(res, 200, { 'cache-control': 'max-age=60' }, `v${answered}`), 200)
    }
    if (url.pathname === '/large-vary') {
      const language = String(req.headers['accept-language'] ?? 'none')
      // de is private: undici deletes under the GET key on such an answer
      const cacheControl = language === 'de' ? 'private' : 'max-age=60'
      const headers = { 'cache-control': cacheControl, vary: 'accept-language' }
      return reply(res, 200, headers, req.method === 'GET' ? `${language} ${LARGE_BODY}` : 'written')
    }
    if (url.pathname === '/held-304') {
      // a 304 that makes the revalidated variant stale at once: undici deletes the entry on it
      const language = String(req.headers['accept-language'] ?? 'none')
      const headers = { etag: '"e"', vary: 'accept-language' }
      if (req.headers['if-none-match'] === '"e"')
        return reply(res, 304, { ...headers, 'cache-control': 'max-age=0' })
      return reply(res, 200, { ...headers, 'cache-control': 'max-age=60' }, `${language} ${LARGE_BODY}`)
    }
    if (url.pathname === '/etag-cache-control') {
      const headers = { 'cache-control': 'no-cache', etag: '"v1"' }
      if (req.headers['if-none-match'] === '"v1"') return reply(res, 304, headers)
      return reply(res, 200, headers, LARGE_BODY)
    }
    reply(res, 200, { 'cache-control': 'max-age=60' }, `${seen.method} ${seen.url}`)
  })
}

/** undici's own cache interceptor over `store`, on a fresh Agent. */
export function undiciCache(store: CacheStore) {
  const agent = new Agent()
  const adapter = toUndiciStore(store)
  const dispatcher: Dispatcher = agent.compose(interceptors.cache({ store: adapter }))
  return {
    dispatcher,
    store,
    /** Sends a request and waits until the store shows its effect: undici does not wait for async stores. */
    sendAndSettle: async (
      target: string,
      options: { method?: string; headers?: Record<string, string> } = {},
    ) => {
      const { method = 'GET', headers = {} } = options
      const response = await send(dispatcher, origin.url + target, { method, headers })
      const key = { origin: origin.url, method: 'GET', path: target, headers }
      // after a write, until the store itself has no entry left (the adapter hides them at once)
      const gone = async () => (await store.get(`undici ${origin.url}${target}`)).length === 0
      const stored = async () => {
        const found = await adapter.get(key)
        // the body of a lookup made only to look: closed, as undici closes every body it is given
        if (found?.body instanceof Readable) found.body.destroy()
        return found !== undefined
      }
      const settled = method === 'GET' ? stored : gone
      for (let tries = 0; !(await settled()); tries++) {
        if (tries === 200) throw new Error(`${method} ${target} did not settle in the store`)
        await sleep(5)
      }
      return response
    },
    /** A GET that revalidates (`no-cache`): its body is left unread, as a hit still being read. */
    revalidateUnread: (target: string, headers: Record<string, string>) =>
      request(origin.url + target, { dispatcher, headers: { ...headers, 'cache-control': 'no-cache' } }),
    close: async () => {
      await agent.close()
      await store.close()
    },
  }
}

/** Writes one value and body through the adapter, resolved once the store has committed it. */
export function writeValue(adapter: UndiciCacheStore, key: UndiciKey, value: UndiciValue, body: string) {
  const stream = adapter.createWriteStream(key, value)
  assert.ok(stream)
  return new Promise((resolve, reject) => {
    stream.on('error', reject).on('finish', resolve).end(Buffer.from(body))
  })
}
