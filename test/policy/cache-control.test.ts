import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { parseCacheControl, requestDirectives, responseDirectives } from '../../lib/policy/cache-control.js'

describe('parseCacheControl (RFC 9111 §5.2)', () => {
  it('returns {} for absent or empty fields', () => {
    assert.deepEqual(parseCacheControl(undefined), {})
    assert.deepEqual(parseCacheControl(''), {})
    assert.deepEqual(parseCacheControl([' , ', '']), {})
  })

  it('parses every known directive', () => {
    assert.deepEqual(
      parseCacheControl(
        'max-age=60, s-maxage=120, max-stale=5, min-fresh=6, stale-while-revalidate=7, stale-if-error=8, ' +
          'no-cache, private, no-store, public, must-revalidate, proxy-revalidate, must-understand, ' +
          'immutable, no-transform, only-if-cached',
      ),
      {
        maxAgeSeconds: 60,
        sMaxAgeSeconds: 120,
        maxStaleSeconds: 5,
        minFreshSeconds: 6,
        staleWhileRevalidateSeconds: 7,
        staleIfErrorSeconds: 8,
        noCache: true,
        private: true,
        noStore: true,
        public: true,
        mustRevalidate: true,
        proxyRevalidate: true,
        mustUnderstand: true,
        immutable: true,
        noTransform: true,
        onlyIfCached: true,
      },
    )
  })

  it('treats names case-insensitively and combines lines', () => {
    assert.deepEqual(parseCacheControl(['MAX-AGE=5', 'Public']), { maxAgeSeconds: 5, public: true })
  })

  it('accepts quoted delta-seconds and whitespace around =', () => {
    assert.deepEqual(parseCacheControl('max-age="5"'), { maxAgeSeconds: 5 })
    assert.deepEqual(parseCacheControl('max-age = 5'), { maxAgeSeconds: 5 })
  })

  it('ignores unknown directives and arguments of flags', () => {
    assert.deepEqual(parseCacheControl('foo, bar=1, baz="a, b", no-store=yes, constructor, __proto__'), {
      noStore: true,
    })
  })

  it('caps delta-seconds at 2^31 (§1.2.2)', () => {
    assert.deepEqual(parseCacheControl('max-age=99999999999, stale-if-error=2147483649'), {
      maxAgeSeconds: 2147483648,
      staleIfErrorSeconds: 2147483648,
    })
  })

  it('makes an invalid max-age or s-maxage 0 (§4.2.1)', () => {
    for (const value of ['max-age=abc', 'max-age=-1', 'max-age=', 'max-age', 'max-age=1.5', 'max-age=""']) {
      assert.deepEqual(parseCacheControl(value), { maxAgeSeconds: 0 }, value)
    }
    assert.deepEqual(parseCacheControl('s-maxage=x'), { sMaxAgeSeconds: 0 })
    assert.deepEqual(parseCacheControl('s-maxage'), { sMaxAgeSeconds: 0 })
  })

  it('keeps the smaller of repeated max-age and s-maxage', () => {
    assert.deepEqual(parseCacheControl('max-age=60, max-age=30'), { maxAgeSeconds: 30 })
    assert.deepEqual(parseCacheControl(['max-age=30', 'max-age=60']), { maxAgeSeconds: 30 })
    assert.deepEqual(parseCacheControl('max-age=60, max-age=bad'), { maxAgeSeconds: 0 })
    assert.deepEqual(parseCacheControl('s-maxage=60, s-maxage=10'), { sMaxAgeSeconds: 10 })
  })

  it('reads max-stale: bare = Infinity, invalid ignored, repeats keep the smaller (§5.2.1.2)', () => {
    assert.deepEqual(parseCacheControl('max-stale'), { maxStaleSeconds: Number.POSITIVE_INFINITY })
    assert.deepEqual(parseCacheControl('max-stale=x'), {})
    assert.deepEqual(parseCacheControl('max-stale=-1'), {})
    assert.deepEqual(parseCacheControl('max-stale, max-stale=10'), { maxStaleSeconds: 10 })
    assert.deepEqual(parseCacheControl('max-stale=20, max-stale=10, max-stale=x'), { maxStaleSeconds: 10 })
  })

  it('reads min-fresh: invalid ignored, repeats keep the larger (§5.2.1.3)', () => {
    assert.deepEqual(parseCacheControl('min-fresh=x'), {})
    assert.deepEqual(parseCacheControl('min-fresh'), {})
    assert.deepEqual(parseCacheControl('min-fresh=5, min-fresh=10, min-fresh=1'), { minFreshSeconds: 10 })
  })

  it('reads stale-while-revalidate and stale-if-error: invalid ignored, repeats keep the smaller', () => {
    assert.deepEqual(parseCacheControl('stale-while-revalidate, stale-if-error=x'), {})
    assert.deepEqual(parseCacheControl('stale-while-revalidate=30, stale-while-revalidate=10'), {
      staleWhileRevalidateSeconds: 10,
    })
    assert.deepEqual(parseCacheControl('stale-if-error=30, stale-if-error=60'), { staleIfErrorSeconds: 30 })
  })

  it('reads qualified no-cache and private as lower-case field names (§5.2.2.4, §5.2.2.7)', () => {
    assert.deepEqual(parseCacheControl('no-cache="Set-Cookie, X-Foo", max-age=5'), {
      noCache: ['set-cookie', 'x-foo'],
      maxAgeSeconds: 5,
    })
    assert.deepEqual(parseCacheControl('private="a,b"'), { private: ['a', 'b'] })
    assert.deepEqual(parseCacheControl('private=a'), { private: ['a'] })
  })

  it('merges repeated qualified forms without duplicates', () => {
    assert.deepEqual(parseCacheControl('private="a, b", private="B, c"'), { private: ['a', 'b', 'c'] })
  })

  it('lets the bare form win over the qualified form, in either order', () => {
    assert.deepEqual(parseCacheControl('private="a", private'), { private: true })
    assert.deepEqual(parseCacheControl('private, private="a"'), { private: true })
    assert.deepEqual(parseCacheControl('no-cache="a", no-cache'), { noCache: true })
  })

  it('treats a qualified form naming no field as bare', () => {
    assert.deepEqual(parseCacheControl('private='), { private: true })
    assert.deepEqual(parseCacheControl('private=""'), { private: true })
    assert.deepEqual(parseCacheControl('no-cache=" , "'), { noCache: true })
  })

  it('marks a member that is not token [= token / quoted-string] malformed (§5.2)', () => {
    for (const value of [
      'public; max-age=60',
      'no-store; no-cache',
      'max-age=60;private',
      'max-age=60 private',
      'max-age="60',
      'x=a b',
    ]) {
      assert.equal(parseCacheControl(value).malformed, true, value)
    }
    for (const value of [
      'max-age = 60',
      'max-age="60", no-cache="a, b"',
      'max-age=3600.0',
      'max-age=',
      'ext=tok, , x="q\\"q"',
    ]) {
      assert.equal(parseCacheControl(value).malformed, undefined, value)
    }
    assert.deepEqual(parseCacheControl('max-age=60;private'), { malformed: true, maxAgeSeconds: 0 })
    assert.deepEqual(parseCacheControl('public, max-age=600;'), { public: true, maxAgeSeconds: 600 })
  })

  it('does not split directives at commas inside quotes', () => {
    assert.deepEqual(parseCacheControl('private="max-age=5, no-store", public'), {
      private: ['max-age=5', 'no-store'],
      public: true,
    })
  })

  it('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.array(fc.string())), (value) => {
        const directives = parseCacheControl(value)
        for (const seconds of [directives.maxAgeSeconds, directives.sMaxAgeSeconds]) {
          assert.ok(seconds === undefined || (seconds >= 0 && seconds <= 2147483648))
        }
      }),
    )
  })

  it('never throws on directive-shaped input', () => {
    const directive = fc.tuple(
      fc.constantFrom('max-age', 'max-stale', 'min-fresh', 'private', 'no-cache', 'public', 'x'),
      fc.option(fc.string(), { nil: undefined }),
    )
    fc.assert(
      fc.property(fc.array(directive), (pairs) => {
        parseCacheControl(
          pairs.map(([name, value]) => (value === undefined ? name : `${name}=${value}`)).join(','),
        )
      }),
    )
  })
})

describe('responseDirectives', () => {
  it('reads the cache-control field', () => {
    assert.deepEqual(responseDirectives({ 'cache-control': ['max-age=5', 'public'] }), {
      maxAgeSeconds: 5,
      public: true,
    })
    assert.deepEqual(responseDirectives({ pragma: 'no-cache' }), {})
  })
})

describe('requestDirectives (RFC 9111 §5.2.1, §5.4)', () => {
  it('reads the cache-control field', () => {
    assert.deepEqual(requestDirectives({ 'cache-control': 'max-stale, only-if-cached' }), {
      maxStaleSeconds: Number.POSITIVE_INFINITY,
      onlyIfCached: true,
    })
  })

  it('makes a malformed field no-cache and no-store', () => {
    assert.deepEqual(requestDirectives({ 'cache-control': 'no-store; no-cache' }), {
      malformed: true,
      noCache: true,
      noStore: true,
    })
  })

  it('treats Pragma: no-cache as no-cache when there is no Cache-Control', () => {
    assert.deepEqual(requestDirectives({ pragma: 'No-Cache' }), { noCache: true })
    assert.deepEqual(requestDirectives({ pragma: ['foo', 'bar, no-cache'] }), { noCache: true })
    assert.deepEqual(requestDirectives({ pragma: 'foo' }), {})
    assert.deepEqual(requestDirectives({}), {})
  })

  it('ignores Pragma when Cache-Control is present, even empty', () => {
    assert.deepEqual(requestDirectives({ 'cache-control': 'max-age=5', pragma: 'no-cache' }), {
      maxAgeSeconds: 5,
    })
    assert.deepEqual(requestDirectives({ 'cache-control': '', pragma: 'no-cache' }), {})
  })

  it('shares one frozen result for a request that asks nothing, and a fresh one for Pragma', () => {
    const none = requestDirectives({})
    assert.equal(requestDirectives({ accept: 'text/html', pragma: 'foo' }), none)
    assert.ok(Object.isFrozen(none))
    assert.throws(() => {
      ;(none as { noCache?: boolean }).noCache = true
    }, TypeError)
    assert.deepEqual(requestDirectives({}), {})
    assert.notEqual(requestDirectives({ pragma: 'no-cache' }), requestDirectives({ pragma: 'no-cache' }))
  })
})
