import assert from 'node:assert/strict'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { after, before, describe, test } from 'node:test'
import { makeAgent, type Reply, send, sleep, storeKinds } from '../helpers/client.js'
import { type Origin, reply, startOrigin, twoMinutesAgo } from '../helpers/origin.js'

// RFC 9111 §3.5: a shared cache may keep a response to a request with Authorization when it says
// `must-revalidate`, `s-maxage` or `public`, and reuse it only as those allow: these three say
// "validate first", and the origin answers a validation for each user's own credentials. §4: one
// response serves several concurrent requests only where reusing it for them is allowed.
const DIRECTIVES = ['must-revalidate, max-age=0', 's-maxage=0', 'public, no-cache']
const ETAG = '"alice-1"'
const ANSWER_DELAY_MS = 150

let origin: Origin
before(async () => {
  origin = await startOrigin((req, res) => {
    if (req.url?.startsWith('/variants-')) return variants(req, res)
    if (req.url?.startsWith('/late-')) return late(req, res)
    if (req.url?.startsWith('/both-')) return both(req, res)
    if (req.url?.startsWith('/own-')) return ownPage(req, res)
    if (req.url?.startsWith('/dated-')) return datedPage(req, res)
    const cacheControl = new URL(req.url ?? '/', origin.url).searchParams.get('cc') ?? ''
    setTimeout(() => {
      if (req.headers.authorization !== 'Bearer alice') return reply(res, 401, {}, 'denied')
      const headers = { 'cache-control': cacheControl, etag: ETAG }
      if (req.headers['if-none-match'] === ETAG) return reply(res, 304, headers)
      reply(res, 200, { ...headers, ...datedFor(req) }, 'statement of alice')
    }, ANSWER_DELAY_MS)
  })
})
after(() => origin.close())

/** With `?stale`, a 200 stale on arrival that several revalidating requests may share (see twoMinutesAgo). */
function datedFor(req: IncomingMessage): Record<string, string> {
  const stale = new URL(req.url ?? '/', origin.url).searchParams.has('stale')
  return stale ? { date: twoMinutesAgo() } : {}
}

/** Alice's page in her language, answered first; a public page in French; 401 to anyone else. */
function variants(req: IncomingMessage, res: ServerResponse): void {
  const lang = req.headers['x-lang']
  const vary = { vary: 'x-lang' }
  if (req.headers.authorization === 'Bearer alice') {
    const headers = { ...vary, 'cache-control': 'must-revalidate, max-age=0', etag: ETAG }
    setTimeout(() => reply(res, 200, headers, `alice ${lang}`), 50)
  } else if (lang === 'fr') {
    setTimeout(() => reply(res, 200, { ...vary, 'cache-control': 'max-age=60' }, 'public fr'), 200)
  } else {
    reply(res, 401, {}, 'denied')
  }
}

/** Alice's statement, its header sent at once and its body 100 ms later. */
function late(req: IncomingMessage, res: ServerResponse): void {
  if (req.headers.authorization !== 'Bearer alice') return void reply(res, 401, {}, 'denied')
  res.writeHead(200, { 'cache-control': 'must-revalidate, max-age=60', etag: ETAG })
  res.write('statement ')
  setTimeout(() => res.end('of alice'), 100)
}

/** A statement anyone may read, with or without credentials, validated after 150 ms. */
function both(req: IncomingMessage, res: ServerResponse): void {
  const headers = { 'cache-control': 'must-revalidate, max-age=60', etag: ETAG }
  if (req.headers['if-none-match'] === ETAG)
    return void setTimeout(() => reply(res, 304, headers), ANSWER_DELAY_MS)
  reply(res, 200, { ...headers, date: twoMinutesAgo() }, 'statement for everyone')
}

/** Each caller's own page, the same Last-Modified for all; conditionals are not looked at. */
function ownPage(req: IncomingMessage, res: ServerResponse): void {
  const lastModified = 'Mon, 02 Nov 2026 10:00:00 GMT'
  res.writeHead(200, { 'cache-control': 'must-revalidate, max-age=0', 'last-modified': lastModified })
  res.end(req.method === 'HEAD' ? undefined : `page of ${req.headers.authorization ?? 'nobody'}`)
}

/**
 * Each caller's own page, one Last-Modified for all (a 304 to any If-Modified-Since naming it): with
 * credentials to be validated on each use, without them fresh for a minute.
 */
function datedPage(req: IncomingMessage, res: ServerResponse): void {
  const lastModified = 'Mon, 02 Nov 2026 10:00:00 GMT'
  const cacheControl = req.headers.authorization ? 'must-revalidate, max-age=0' : 'max-age=60'
  const headers = { 'cache-control': cacheControl, 'last-modified': lastModified }
  // a HEAD is answered 200 whatever it asks: the cache freshens the GET's entry from it (RFC 9111 §4.3.5)
  if (req.method !== 'HEAD' && req.headers['if-modified-since'] === lastModified)
    return void reply(res, 304, headers)
  res.writeHead(200, headers)
  res.end(req.method === 'HEAD' ? undefined : `page of ${req.headers.authorization ?? 'nobody'}`)
}

const as = (authorization: string | undefined) => (authorization ? { authorization } : undefined)
const summary = (answer: Reply) => [answer.status, answer.body]

for (const kind of storeKinds) {
  describe(`concurrent requests with other credentials are not served a response kept under RFC 9111 §3.5 (${kind.name})`, () => {
    for (const directives of DIRECTIVES) {
      const path = (name: string) => `/${name}-${kind.name}?cc=${encodeURIComponent(directives)}`

      test(`${directives}: while alice's first request is at the origin`, async () => {
        const cache = makeAgent(kind.make())
        const url = `${origin.url}${path('miss')}`
        try {
          const later = async (delayMs: number, authorization?: string) => {
            await sleep(delayMs)
            return send(cache.agent, url, { headers: as(authorization) })
          }
          const [alice, mallory, bob] = await Promise.all([
            later(0, 'Bearer alice'),
            later(30, undefined),
            later(40, 'Bearer bob'),
          ])
          assert.deepEqual([alice, mallory, bob].map(summary), [
            [200, 'statement of alice'],
            [401, 'denied'],
            [401, 'denied'],
          ])
          assert.equal(origin.count(path('miss')), 3)
        } finally {
          await cache.close()
        }
      })

      test(`${directives}: while alice's revalidation is at the origin`, async () => {
        const cache = makeAgent(kind.make())
        const url = `${origin.url}${path('revalidation')}`
        try {
          await send(cache.agent, url, { headers: as('Bearer alice') })
          const [alice, mallory] = await Promise.all([
            send(cache.agent, url, { headers: as('Bearer alice') }),
            sleep(30).then(() => send(cache.agent, url)),
          ])
          assert.deepEqual([alice, mallory].map(summary), [
            [200, 'statement of alice'],
            [401, 'denied'],
          ])
          assert.equal(alice.headers['cache-status'], 'undici-cache; fwd=stale; fwd-status=304')
          assert.equal(origin.count(path('revalidation')), 3)
        } finally {
          await cache.close()
        }
      })
    }

    test("a request waiting on another's flight is not served a variant kept for a request with Authorization", async () => {
      // alice's `en` variant is stored while carol's `fr` request is at the origin; dave (no
      // credentials, `en`) waits on carol's flight, then finds alice's variant, stored since it started
      const cache = makeAgent(kind.make())
      const url = `${origin.url}/variants-${kind.name}`
      try {
        const [alice, carol, dave] = await Promise.all([
          send(cache.agent, url, { headers: { authorization: 'Bearer alice', 'x-lang': 'en' } }),
          sleep(10).then(() => send(cache.agent, url, { headers: { 'x-lang': 'fr' } })),
          sleep(20).then(() => send(cache.agent, url, { headers: { 'x-lang': 'en' } })),
        ])
        assert.deepEqual([alice, carol, dave].map(summary), [
          [200, 'alice en'],
          [200, 'public fr'],
          [401, 'denied'],
        ])
        assert.equal(origin.requests.filter((seen) => seen.url === `/variants-${kind.name}`).length, 3)
      } finally {
        await cache.close()
      }
    })

    test('requests with the same credentials share a revalidation, and a download already under way', async () => {
      const cache = makeAgent(kind.make())
      const stale = `${origin.url}/chain-${kind.name}?stale&cc=${encodeURIComponent('must-revalidate, max-age=60')}`
      const lateUrl = `${origin.url}/late-${kind.name}`
      try {
        await send(cache.agent, stale, { headers: as('Bearer alice') })
        const five = await Promise.all(
          Array.from({ length: 5 }, () => send(cache.agent, stale, { headers: as('Bearer alice') })),
        )
        assert.deepEqual(new Set(five.map(summary).map(String)), new Set(['200,statement of alice']))
        assert.equal(origin.requests.filter((seen) => seen.url.startsWith(`/chain-${kind.name}`)).length, 2)
        // the second arrives once the first's response has started: it is served the entry once stored
        const [first, second] = await Promise.all([
          send(cache.agent, lateUrl, { headers: as('Bearer alice') }),
          sleep(40).then(() => send(cache.agent, lateUrl, { headers: as('Bearer alice') })),
        ])
        assert.deepEqual([first, second].map(summary), [
          [200, 'statement of alice'],
          [200, 'statement of alice'],
        ])
        assert.equal(second?.headers['cache-status'], 'undici-cache; fwd=miss; collapsed')
        assert.equal(origin.count(`/late-${kind.name}`), 1)
      } finally {
        await cache.close()
      }
    })

    for (const who of ['Bearer bob', undefined]) {
      test(`requests of ${who ?? 'nobody'} share a revalidation of an entry first kept for alice`, async () => {
        const cache = makeAgent(kind.make())
        const path = `/both-${kind.name}-${who ? 'bob' : 'nobody'}`
        const url = `${origin.url}${path}`
        try {
          await send(cache.agent, url, { headers: as('Bearer alice') })
          const five = await Promise.all(
            Array.from({ length: 5 }, () => send(cache.agent, url, { headers: as(who) })),
          )
          assert.deepEqual(new Set(five.map(summary).map(String)), new Set(['200,statement for everyone']))
          assert.equal(origin.count(path), 2)
        } finally {
          await cache.close()
        }
      })
    }

    test("a HEAD of others that freshens alice's entry does not make it theirs (nor cache.ttl serve it to them)", async () => {
      const cache = makeAgent(kind.make())
      try {
        for (const who of [undefined, 'Bearer bob']) {
          const path = `/own-${kind.name}-${who ? 'bob' : 'nobody'}`
          const url = `${origin.url}${path}`
          const alice = await send(cache.agent, url, { headers: as('Bearer alice') })
          assert.equal(alice.body, 'page of Bearer alice')
          assert.equal((await send(cache.agent, url, { method: 'HEAD', headers: as(who) })).status, 200)
          const page = await send(cache.agent, url, { headers: as(who), cache: { ttl: 60 } })
          assert.equal(page.body, `page of ${who ?? 'nobody'}`)
          assert.equal(origin.count(path), 3)
        }
      } finally {
        await cache.close()
      }
    })

    for (const method of ['GET', 'HEAD']) {
      test(`a ${method} without credentials whose answer drops must-revalidate from alice's entry does not make it everyone's (RFC 9111 §3.5)`, async () => {
        const cache = makeAgent(kind.make())
        const path = `/dated-${kind.name}-${method}`
        const url = `${origin.url}${path}`
        try {
          assert.equal(
            (await send(cache.agent, url, { headers: as('Bearer alice') })).body,
            'page of Bearer alice',
          )
          // the origin answers this request's own validation: it is served what it validated
          assert.equal((await send(cache.agent, url, { method })).status, 200)
          const bob = await send(cache.agent, url, { headers: as('Bearer bob') })
          assert.deepEqual(
            [bob.body, bob.headers['cache-status']],
            ['page of Bearer bob', 'undici-cache; fwd=miss; stored'],
          )
          assert.equal(origin.count(path), 3)
        } finally {
          await cache.close()
        }
      })
    }

    test("cache.ttl does not serve an entry kept for one user's credentials to another's request", async () => {
      const cache = makeAgent(kind.make())
      const path = `/ttl-${kind.name}?cc=${encodeURIComponent('s-maxage=0')}`
      const url = `${origin.url}${path}`
      try {
        await send(cache.agent, url, { headers: as('Bearer alice') })
        const mallory = await send(cache.agent, url, { cache: { ttl: 60 } })
        assert.deepEqual(summary(mallory), [401, 'denied'])
        const alice = await send(cache.agent, url, { headers: as('Bearer alice'), cache: { ttl: 60 } })
        assert.deepEqual(summary(alice), [200, 'statement of alice'])
        assert.match(String(alice.headers['cache-status']), /^undici-cache; hit; ttl=(58|59|60)$/)
        assert.equal(origin.count(path), 2)
      } finally {
        await cache.close()
      }
    })

    test('concurrent requests with the same credentials still share one origin request', async () => {
      const cache = makeAgent(kind.make())
      const url = `${origin.url}/same-${kind.name}?cc=${encodeURIComponent('must-revalidate, max-age=60')}`
      try {
        const answers = await Promise.all(
          [0, 30].map((delayMs) =>
            sleep(delayMs).then(() => send(cache.agent, url, { headers: as('Bearer alice') })),
          ),
        )
        assert.deepEqual(answers.map(summary), [
          [200, 'statement of alice'],
          [200, 'statement of alice'],
        ])
        assert.equal(answers[1]?.headers['cache-status'], 'undici-cache; fwd=miss; collapsed')
        assert.equal(origin.requests.filter((seen) => seen.url.startsWith(`/same-${kind.name}`)).length, 1)
      } finally {
        await cache.close()
      }
    })
  })
}
