import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { formatCacheStatus } from '../../lib/policy/cache-status.js'

describe('formatCacheStatus (RFC 9211)', () => {
  it('formats the RFC shapes', () => {
    assert.equal(
      formatCacheStatus('undici-cache', { hit: true, ttlSeconds: 42 }),
      'undici-cache; hit; ttl=42',
    )
    assert.equal(
      formatCacheStatus('undici-cache', { fwd: 'miss', stored: true }),
      'undici-cache; fwd=miss; stored',
    )
    assert.equal(
      formatCacheStatus('undici-cache', { fwd: 'stale', fwdStatus: 304 }),
      'undici-cache; fwd=stale; fwd-status=304',
    )
    assert.equal(formatCacheStatus('undici-cache', {}), 'undici-cache')
  })

  it('orders every parameter as hit, fwd, fwd-status, ttl, stored, collapsed, key, detail', () => {
    assert.equal(
      formatCacheStatus('c', {
        detail: 'd',
        key: 'k',
        collapsed: true,
        stored: true,
        ttlSeconds: 1,
        fwdStatus: 200,
        fwd: 'uri-miss',
        hit: true,
      }),
      'c; hit; fwd=uri-miss; fwd-status=200; ttl=1; stored; collapsed; key="k"; detail=d',
    )
  })

  it('omits false booleans', () => {
    assert.equal(formatCacheStatus('c', { hit: false, stored: false, collapsed: false }), 'c')
  })

  it('truncates ttl toward zero, keeps negatives, and clamps to the sf-integer range', () => {
    assert.equal(formatCacheStatus('c', { ttlSeconds: 41.9 }), 'c; ttl=41')
    assert.equal(formatCacheStatus('c', { ttlSeconds: -41.9 }), 'c; ttl=-41')
    assert.equal(formatCacheStatus('c', { ttlSeconds: -0.5 }), 'c; ttl=0')
    assert.equal(formatCacheStatus('c', { ttlSeconds: Number.POSITIVE_INFINITY }), 'c; ttl=999999999999999')
    assert.equal(formatCacheStatus('c', { ttlSeconds: -1e20 }), 'c; ttl=-999999999999999')
    assert.equal(formatCacheStatus('c', { ttlSeconds: Number.NaN }), 'c')
  })

  it('always quotes key, escaping backslash and quote', () => {
    assert.equal(formatCacheStatus('c', { key: 'token' }), 'c; key="token"')
    assert.equal(formatCacheStatus('c', { key: 'a"b\\c' }), 'c; key="a\\"b\\\\c"')
  })

  it('percent-encodes characters an sf-string cannot hold', () => {
    assert.equal(formatCacheStatus('c', { key: 'a\nb' }), 'c; key="a%0Ab"')
    assert.equal(formatCacheStatus('c', { key: 'é' }), 'c; key="%C3%A9"')
    assert.equal(formatCacheStatus('c', { key: '\ud800' }), 'c; key="%EF%BF%BD"')
  })

  it('writes detail and the cache name as a token when valid, else as a string', () => {
    assert.equal(formatCacheStatus('c', { detail: 'store-error' }), 'c; detail=store-error')
    assert.equal(formatCacheStatus('c', { detail: 'two words' }), 'c; detail="two words"')
    assert.equal(formatCacheStatus('My Cache', {}), '"My Cache"')
    assert.equal(formatCacheStatus('1cache', {}), '"1cache"')
    assert.equal(formatCacheStatus('*cache:v1/x', {}), '*cache:v1/x')
    assert.equal(formatCacheStatus('', {}), '""')
  })

  it('always yields a valid header value', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary' }),
        fc.string({ unit: 'binary' }),
        fc.string(),
        fc.double(),
        (name, key, detail, ttlSeconds) => {
          const value = formatCacheStatus(name, { key, detail, ttlSeconds, hit: true })
          assert.match(value, /^[\x20-\x7e]*$/)
        },
      ),
    )
  })
})
