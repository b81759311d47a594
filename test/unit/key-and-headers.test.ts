import assert from 'node:assert/strict'
import { test } from 'node:test'
import { cacheKey, keyFromUrl } from '../../lib/key.js'
import { normalizeHeaders } from '../../lib/request-headers.js'

test('the key is the normalised target URI, with the query option appended', () => {
  assert.equal(cacheKey({ origin: 'HTTP://Example.COM:80', path: '/a?b=1' }), 'http://example.com/a?b=1')
  assert.equal(cacheKey({ origin: new URL('http://h:8080'), path: '/p' }), 'http://h:8080/p')
  assert.equal(
    cacheKey({ origin: 'http://h', path: '/p', query: { a: 1, b: ['x', 'y'], c: null } }),
    'http://h/p?a=1&b=x&b=y',
  )
  assert.equal(cacheKey({ origin: 'http://h', path: '/p?z=0', query: { a: 'b c' } }), 'http://h/p?z=0&a=b+c')
  assert.equal(cacheKey({ origin: 'http://h', path: '/p', query: {} }), 'http://h/p')
  assert.equal(keyFromUrl('http://h/p#fragment'), 'http://h/p')
})

test('a request without an absolute origin-form target has no key (bypassed)', () => {
  assert.equal(cacheKey({ origin: undefined, path: '/p' }), undefined)
  assert.equal(cacheKey({ origin: null, path: '/p' }), undefined)
  assert.equal(cacheKey({ origin: 'http://h', path: '//other.host/p' }), undefined)
  assert.equal(cacheKey({ origin: 'http://h', path: '*' }), undefined)
  assert.equal(cacheKey({ origin: 'not a url', path: '/p' }), undefined)
})

test('request headers in every form undici accepts become lower-case names with arrays for repeats', () => {
  const expected = { accept: 'a', 'x-two': ['1', '2'] }
  assert.deepEqual(normalizeHeaders({ Accept: 'a', 'X-Two': ['1', '2'], gone: undefined }), expected)
  assert.deepEqual(normalizeHeaders(['Accept', 'a', 'X-Two', '1', 'x-two', '2']), expected)
  assert.deepEqual(
    normalizeHeaders([
      ['Accept', 'a'],
      ['X-Two', '1'],
      ['x-two', '2'],
    ]),
    expected,
  )
  assert.deepEqual(
    normalizeHeaders(
      new Map<string, string | string[]>([
        ['Accept', 'a'],
        ['X-Two', ['1', '2']],
      ]),
    ),
    expected,
  )
  assert.deepEqual(normalizeHeaders(null), {})
  assert.deepEqual(normalizeHeaders([]), {})
})
