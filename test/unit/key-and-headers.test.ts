import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { cacheKey, keyFromUrl } from '../../lib/key.js'
import { definedFields, normalizeHeaders } from '../../lib/request-headers.js'

test('the key is the normalised target URI, with the query option appended', () => {
  assert.equal(cacheKey({ origin: 'HTTP://Example.COM:80', path: '/a?b=1' }), 'http://example.com/a?b=1')
  assert.equal(cacheKey({ origin: new URL('http://h:8080'), path: '/p' }), 'http://h:8080/p')
  assert.equal(
    cacheKey({ origin: 'http://h', path: '/p', query: { a: 1, b: ['x', 'y'], c: null } }),
    'http://h/p?a=1&b=x&b=y&c=',
  )
  // as undici's own serialisation (node:querystring): the key is the target undici sends
  assert.equal(
    cacheKey({ origin: 'http://h', path: '/p', query: { a: 'b c', t: '~' } }),
    'http://h/p?a=b%20c&t=~',
  )
  assert.notEqual(
    cacheKey({ origin: 'http://h', path: '/p', query: { a: 'x y' } }),
    cacheKey({ origin: 'http://h', path: '/p?a=x+y' }),
  )
  assert.equal(cacheKey({ origin: 'http://h', path: '/p', query: {} }), 'http://h/p')
  // undici refuses query with a path that has a query or fragment: not answered from the cache either
  assert.equal(cacheKey({ origin: 'http://h', path: '/p?z=0', query: { a: 'b' } }), undefined)
  assert.equal(keyFromUrl('http://h/p#fragment'), 'http://h/p')
})

test('a path has a key only when URL parsing leaves it as undici sends it (the plain-path shortcut changes nothing)', () => {
  const pieces = [
    'a',
    'Z',
    '0',
    '/',
    '.',
    '..',
    '%2e',
    '%2E',
    '%41',
    '%zz',
    '?',
    '#',
    "'",
    '\\',
    ' ',
    '~',
    '-',
    '_',
    ':',
    '@',
    '!',
    '$',
    '&',
    '(',
    ')',
    '*',
    '+',
    ',',
    ';',
    '=',
    '"',
    '<',
    '>',
    '`',
    '{',
    '}',
    '|',
    '^',
    '[',
    ']',
    'é',
    '\u{1f600}',
    '\t',
  ]
  const path = fc.array(fc.constantFrom(...pieces), { maxLength: 12 }).map((parts) => `/${parts.join('')}`)
  const origin = fc.constantFrom('http://h', 'HTTPS://Example.COM:443', 'http://h:8080', 'http://[::1]:3000')
  fc.assert(
    fc.property(origin, path, (base, target) => {
      fc.pre(!target.startsWith('//'))
      const sent = new URL(base).origin + target
      const url = new URL(sent)
      const parsed = url.href.replace(/#.*$/, '')
      assert.equal(cacheKey({ origin: base, path: target }), parsed === sent ? keyFromUrl(sent) : undefined)
    }),
    { numRuns: 2000 },
  )
  // each of these is another target to the origin than its normalised form
  for (const path of ['/a/./b/../c', '/static/..\\api', '/x#frag', "/p?q='x'", '/%2e%2e/x', '/a b'])
    assert.equal(cacheKey({ origin: 'http://h', path }), undefined, path)
  // an empty query is another URI (RFC 3986 §6.2.3), kept by URL parsing's href
  assert.equal(cacheKey({ origin: 'http://h', path: '/p?' }), 'http://h/p?')
  assert.equal(cacheKey({ origin: 'http://h', path: '/a%2fb~%7E' }), 'http://h/a%2Fb~~')
  assert.equal(cacheKey({ origin: 'file:///x', path: '/p' }), undefined)
})

test('one key however the target is percent-encoded (RFC 9110 §4.2.3, RFC 3986 §6.2.2)', () => {
  const keyOf = (path: string) => cacheKey({ origin: 'http://h', path })
  assert.equal(keyOf('/doc%41'), 'http://h/docA')
  assert.equal(keyOf('/p%4a%4A'), 'http://h/pJJ')
  assert.equal(keyOf('/t%7e?id=%31&x=%2d%2E%5F'), 'http://h/t~?id=1&x=-._')
  // reserved and other characters stay encoded, with upper-case hex
  assert.equal(keyOf('/a%2fb%3f%20%25%c3%a9'), 'http://h/a%2Fb%3F%20%25%C3%A9')
  // a stray % is not an escape: decoding beside it would make one (`%%32%35` is not `%25`)
  assert.equal(keyOf('/%zz%4'), 'http://h/%zz%4')
  assert.equal(keyOf('/%%32%35'), 'http://h/%%32%35')
  assert.equal(keyOf('/a%%32%46b%41'), 'http://h/a%%32%46b%41')
  assert.equal(keyFromUrl('HTTP://H/doc%41?q=%7e#x'), 'http://h/docA?q=~')
  // the encoding of a dot segment is still a path URL parsing changes: no key
  assert.equal(keyOf('/a/%2e%2e/b'), undefined)
})

test('a Host field naming another authority than the address joins it in the key', () => {
  assert.equal(
    cacheKey({ origin: 'http://10.0.0.1:8080', path: '/p' }, '10.0.0.1:8080'),
    'http://10.0.0.1:8080/p',
  )
  assert.equal(cacheKey({ origin: 'http://h', path: '/p' }, 'H'), 'http://h/p')
  assert.equal(cacheKey({ origin: 'http://10.0.0.1', path: '/p' }, 'A.test'), 'http://10.0.0.1/p host=a.test')
  assert.notEqual(
    cacheKey({ origin: 'http://10.0.0.1', path: '/p' }, 'a.test'),
    cacheKey({ origin: 'http://10.0.0.1', path: '/p' }, 'b.test'),
  )
  assert.equal(cacheKey({ origin: 'http://10.0.0.1', path: '/p' }, ['a.test', 'b.test']), undefined)
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

test('a null value is an empty field line, as undici sends it (Vary and Authorization see it present)', () => {
  assert.deepEqual(normalizeHeaders({ 'X-User': null, authorization: null }), {
    'x-user': '',
    authorization: '',
  })
  assert.deepEqual(normalizeHeaders({ 'x-two': ['1', null] }), { 'x-two': ['1', ''] })
  assert.deepEqual(normalizeHeaders(['x-user', null, 'x-user', 2]), { 'x-user': ['', '2'] })
})

test('header names that are Object.prototype members stay plain fields', () => {
  const normalized = normalizeHeaders([
    'Constructor',
    'a',
    '__proto__',
    'b',
    'toString',
    '1',
    'tostring',
    '2',
  ])
  assert.equal(Object.getPrototypeOf(normalized), Object.prototype)
  assert.deepEqual(Object.entries(normalized), [
    ['constructor', 'a'],
    ['__proto__', 'b'],
    ['tostring', ['1', '2']],
  ])
  const defined = definedFields(normalized)
  assert.equal(Object.getPrototypeOf(defined), Object.prototype)
  assert.deepEqual(Object.entries(defined), Object.entries(normalized))
})
