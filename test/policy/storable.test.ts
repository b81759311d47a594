import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { canStore, headersToStore, UNDERSTOOD_STATUSES, usableEntries } from '../../lib/policy/storable.js'
import type { Headers } from '../../lib/policy/types.js'

const get = (headers: Headers = {}) => ({ method: 'GET', headers })
const ok = (headers: Headers, statusCode = 200) => ({ statusCode, headers })
const STORABLE = { storable: true }
const refused = (reason: string) => ({ storable: false, reason })

describe('UNDERSTOOD_STATUSES', () => {
  it('lists the understood statuses, without 206, 304 and 1xx', () => {
    assert.deepEqual(
      [...UNDERSTOOD_STATUSES],
      [200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501],
    )
  })
})

describe('canStore (RFC 9111 §3)', () => {
  it('stores a GET 200 with max-age in both modes', () => {
    assert.deepEqual(canStore(get(), ok({ 'cache-control': 'max-age=60' }), true), STORABLE)
    assert.deepEqual(canStore(get(), ok({ 'cache-control': 'max-age=60' }), false), STORABLE)
  })

  it('stores only GET', () => {
    for (const method of ['HEAD', 'POST', 'get']) {
      assert.deepEqual(
        canStore({ method, headers: {} }, ok({ 'cache-control': 'max-age=60' }), true),
        refused('method'),
      )
    }
  })

  it('refuses statuses it does not understand', () => {
    for (const status of [100, 206, 304, 500, 502, 299]) {
      assert.deepEqual(
        canStore(get(), ok({ 'cache-control': 'max-age=60' }, status), true),
        refused('status'),
      )
    }
  })

  it('refuses request no-store (§5.2.1.5) and response no-store (§5.2.2.5)', () => {
    const response = ok({ 'cache-control': 'max-age=60' })
    assert.deepEqual(
      canStore(get({ 'cache-control': 'no-store' }), response, true),
      refused('request-no-store'),
    )
    assert.deepEqual(
      canStore(get(), ok({ 'cache-control': 'no-store, max-age=60' }), false),
      refused('no-store'),
    )
  })

  it('ignores no-store with must-understand for an understood status (§5.2.2.3)', () => {
    const headers = { 'cache-control': 'must-understand, no-store, max-age=60' }
    assert.deepEqual(canStore(get(), ok(headers), true), STORABLE)
    assert.deepEqual(canStore(get(), ok(headers, 206), true), refused('status'))
    assert.deepEqual(
      canStore(get({ 'cache-control': 'no-store' }), ok(headers), true),
      refused('request-no-store'),
    )
  })

  it('stores must-understand responses only for understood statuses (§5.2.2.3)', () => {
    for (const cc of ['must-understand, no-store, max-age=60', 'must-understand, max-age=60']) {
      assert.deepEqual(canStore(get(), ok({ 'cache-control': cc }, 200), true), STORABLE, cc)
      assert.deepEqual(canStore(get(), ok({ 'cache-control': cc }, 200), false), STORABLE, cc)
      assert.deepEqual(canStore(get(), ok({ 'cache-control': cc }, 299), true), refused('status'), cc)
      assert.deepEqual(canStore(get(), ok({ 'cache-control': cc }, 299), false), refused('status'), cc)
    }
  })

  it('refuses a malformed Cache-Control in both modes, which may hide no-store or private (§5.2)', () => {
    for (const value of ['no-store; no-cache', 'public; max-age=60', 'max-age=60;private']) {
      const response = ok({ 'cache-control': value, 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT' })
      for (const shared of [true, false]) {
        assert.deepEqual(canStore(get(), response, shared), refused('malformed-cache-control'), value)
      }
    }
    assert.deepEqual(canStore(get(), ok({ 'cache-control': 'no-store, a;b' }), true), refused('no-store'))
  })

  it('refuses bare private in a shared cache only (§5.2.2.7)', () => {
    const headers = { 'cache-control': 'private, max-age=60' }
    assert.deepEqual(canStore(get(), ok(headers), true), refused('private'))
    assert.deepEqual(canStore(get(), ok(headers), false), STORABLE)
    assert.deepEqual(canStore(get(), ok({ 'cache-control': 'private="x", max-age=60' }), true), STORABLE)
    assert.deepEqual(
      canStore(get(), ok({ 'cache-control': 'private=, max-age=60' }), true),
      refused('private'),
    )
  })

  it('refuses authorized requests in a shared cache unless the response allows them (§3.5)', () => {
    const request = get({ authorization: 'Bearer x' })
    assert.deepEqual(canStore(request, ok({ 'cache-control': 'max-age=60' }), true), refused('authorization'))
    assert.deepEqual(canStore(request, ok({ 'cache-control': 'max-age=60' }), false), STORABLE)
    for (const cc of ['max-age=60, must-revalidate', 'max-age=60, public', 's-maxage=60']) {
      assert.deepEqual(canStore(request, ok({ 'cache-control': cc }), true), STORABLE, cc)
    }
  })

  it('refuses Set-Cookie in a shared cache only', () => {
    const headers = { 'cache-control': 'max-age=60', 'set-cookie': 'a=b' }
    assert.deepEqual(canStore(get(), ok(headers), true), refused('set-cookie'))
    assert.deepEqual(canStore(get(), ok(headers), false), STORABLE)
  })

  it('refuses Vary: *', () => {
    assert.deepEqual(
      canStore(get(), ok({ 'cache-control': 'max-age=60', vary: 'accept, *' }), false),
      refused('vary-star'),
    )
    assert.deepEqual(canStore(get(), ok({ 'cache-control': 'max-age=60', vary: 'accept' }), false), STORABLE)
  })

  it('refuses a Vary member that is no field name: it would tell no request apart (RFC 9110 §12.5.5)', () => {
    for (const vary of [
      'Cookie Accept-Language',
      '"Cookie"',
      'Cookie;',
      'Cookie/1',
      'Cookie\u00e9',
      'accept, *;',
    ]) {
      for (const shared of [true, false]) {
        assert.deepEqual(
          canStore(get(), ok({ 'cache-control': 'max-age=60', vary }), shared),
          refused('malformed-vary'),
          vary,
        )
      }
    }
    assert.deepEqual(
      canStore(get(), ok({ 'cache-control': 'max-age=60', vary: 'Cookie, Accept-Language' }), true),
      STORABLE,
    )
  })

  it('needs freshness information', () => {
    assert.deepEqual(canStore(get(), ok({}, 302), true), refused('no-freshness'))
    assert.deepEqual(canStore(get(), ok({}, 200), true), STORABLE)
    assert.deepEqual(canStore(get(), ok({ 'cache-control': 'public' }, 302), true), STORABLE)
    assert.deepEqual(canStore(get(), ok({ expires: 'invalid' }, 302), true), STORABLE)
    assert.deepEqual(canStore(get(), ok({ 'cache-control': 'max-age=0' }, 302), true), STORABLE)
    assert.deepEqual(canStore(get(), ok({ 'cache-control': 's-maxage=5' }, 302), true), STORABLE)
    assert.deepEqual(
      canStore(get(), ok({ 'cache-control': 's-maxage=5' }, 302), false),
      refused('no-freshness'),
    )
    assert.deepEqual(canStore(get(), ok({ 'cache-control': 'private' }, 302), false), STORABLE)
    assert.deepEqual(
      canStore(get(), ok({ 'cache-control': 'private="x"' }, 302), true),
      refused('no-freshness'),
    )
  })

  it('stores bare no-cache responses (they are revalidated on use)', () => {
    assert.deepEqual(canStore(get(), ok({ 'cache-control': 'no-cache', etag: '"a"' }), true), STORABLE)
  })

  it('reports reasons in RFC order', () => {
    assert.deepEqual(
      canStore({ method: 'POST', headers: {} }, ok({ 'cache-control': 'no-store' }, 500), true),
      refused('method'),
    )
    assert.deepEqual(
      canStore(get(), ok({ 'cache-control': 'no-store, private' }, 500), true),
      refused('status'),
    )
    assert.deepEqual(canStore(get(), ok({ 'cache-control': 'no-store, private' }), true), refused('no-store'))
    assert.deepEqual(canStore(get(), ok({ 'cache-control': 'private', vary: '*' }), true), refused('private'))
  })
})

describe('headersToStore (RFC 9111 §3.1)', () => {
  it('drops hop-by-hop fields and keeps the rest, Age included', () => {
    const headers: Headers = {
      connection: 'keep-alive',
      'keep-alive': 'timeout=5',
      'proxy-connection': 'x',
      te: 'trailers',
      'transfer-encoding': 'chunked',
      upgrade: 'h2c',
      'proxy-authenticate': 'Basic',
      'proxy-authentication-info': 'x',
      'proxy-authorization': 'x',
      trailer: 'x-checksum',
      age: '5',
      'content-type': 'text/plain',
      'set-cookie': ['a=1', 'b=2'],
      absent: undefined,
    }
    assert.deepEqual(headersToStore(headers, true), {
      age: '5',
      'content-type': 'text/plain',
      'set-cookie': ['a=1', 'b=2'],
    })
  })

  it('drops fields nominated by Connection', () => {
    const headers = { connection: 'close, X-Secret', 'x-secret': '1', 'x-other': '2' }
    assert.deepEqual(headersToStore(headers, false), { 'x-other': '2' })
  })

  it('drops no-cache="…" fields in both modes and private="…" fields in shared mode only', () => {
    const headers = {
      'cache-control': 'no-cache="x-a", private="X-B"',
      'x-a': '1',
      'x-b': '2',
      'x-c': '3',
    }
    assert.deepEqual(headersToStore(headers, true), {
      'cache-control': 'no-cache="x-a", private="X-B"',
      'x-c': '3',
    })
    assert.deepEqual(headersToStore(headers, false), {
      'cache-control': 'no-cache="x-a", private="X-B"',
      'x-b': '2',
      'x-c': '3',
    })
  })

  it('also drops the fields a policy view names (RFC 9213 §2.1: a targeted field read as Cache-Control)', () => {
    const headers = { 'cache-control': 'no-cache="x-a"', 'x-a': '1', 'x-b': '2', 'x-c': '3' }
    const view = { ...headers, 'cache-control': 'private="x-b"' }
    assert.deepEqual(headersToStore(headers, true, view), { 'cache-control': 'no-cache="x-a"', 'x-c': '3' })
    assert.deepEqual(headersToStore(headers, false, view), {
      'cache-control': 'no-cache="x-a"',
      'x-b': '2',
      'x-c': '3',
    })
  })

  it('copies arrays instead of sharing them', () => {
    const cookies = ['a=1']
    const stored = headersToStore({ 'set-cookie': cookies }, false)
    assert.notEqual(stored['set-cookie'], cookies)
    assert.deepEqual(stored['set-cookie'], cookies)
  })

  it('keeps an own __proto__ field as a plain field', () => {
    const headers = JSON.parse('{"__proto__": "x", "a": "b"}') as Headers
    const stored = headersToStore(headers, false)
    assert.equal(Object.getPrototypeOf(stored), Object.prototype)
    assert.deepEqual(Object.keys(stored), ['__proto__', 'a'])
  })
})

describe('usableEntries (RFC 9111 §3.5)', () => {
  type Entry = { id: string; sharedCache?: true }
  const shared: Entry = { sharedCache: true, id: 's' }
  const unmarked: Entry = { id: 'u' }
  it("gives a shared cache only what a shared cache stored: not a private cache's entries, nor older unmarked ones", () => {
    assert.deepEqual(usableEntries([unmarked, shared], true), [shared])
    assert.deepEqual(usableEntries([unmarked], true), [])
  })
  it('gives a private cache everything, and the same array when nothing is left out', () => {
    const all = [unmarked, shared]
    assert.equal(usableEntries(all, false), all)
    const marked = [shared]
    assert.equal(usableEntries(marked, true), marked)
  })
})
