import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { formatHttpDate } from '../../lib/policy/dates.js'
import {
  decideReuse,
  isWorthStoring,
  type ReuseDecision,
  staleIfErrorAllows,
  staleWhileRevalidateAllows,
  usefulUntilMs,
  validatedForEachUse,
  wantsOwnAnswer,
} from '../../lib/policy/lookup.js'
import type { Headers, StoredResponse } from '../../lib/policy/types.js'

const T0 = Date.UTC(2024, 0, 1, 12)

function stored(headers: Headers, statusCode = 200): StoredResponse {
  return {
    statusCode,
    statusMessage: 'OK',
    headers,
    requestTimeMs: T0,
    responseTimeMs: T0,
    varyValues: {},
  }
}

const get = (headers: Headers = {}) => ({ method: 'GET', headers })
const at = (seconds: number) => T0 + seconds * 1000
const pick = (decision: { action: string; reason: string }) => [decision.action, decision.reason]

describe('decideReuse (RFC 9111 §4)', () => {
  const maxAge60 = stored({ 'cache-control': 'max-age=60' })

  it('serves a fresh response with its timing', () => {
    assert.deepEqual(decideReuse(get(), maxAge60, at(10), true), {
      action: 'fresh',
      ageSeconds: 10,
      lifetimeSeconds: 60,
      ttlSeconds: 50,
      reason: 'fresh',
    })
  })

  it('revalidates a stale response (fresh only while lifetime > age)', () => {
    assert.deepEqual(decideReuse(get(), maxAge60, at(60), true), {
      action: 'revalidate',
      ageSeconds: 60,
      lifetimeSeconds: 60,
      ttlSeconds: 0,
      reason: 'stale',
    })
  })

  it('revalidates on request no-cache, including Pragma (§5.2.1.4, §5.4)', () => {
    assert.equal(
      decideReuse(get({ 'cache-control': 'no-cache' }), maxAge60, at(1), true).reason,
      'request-no-cache',
    )
    assert.equal(decideReuse(get({ pragma: 'no-cache' }), maxAge60, at(1), true).reason, 'request-no-cache')
  })

  it('revalidates a bare no-cache response but not a qualified one (§5.2.2.4)', () => {
    const bare = stored({ 'cache-control': 'no-cache, max-age=60' })
    assert.deepEqual(
      [decideReuse(get(), bare, at(1), true).action, decideReuse(get(), bare, at(1), true).reason],
      ['revalidate', 'response-no-cache'],
    )
    const qualified = stored({ 'cache-control': 'no-cache="set-cookie", max-age=60' })
    assert.equal(decideReuse(get(), qualified, at(1), true).action, 'fresh')
  })

  it('honours request max-age (§5.2.1.1)', () => {
    assert.equal(decideReuse(get({ 'cache-control': 'max-age=10' }), maxAge60, at(10), true).action, 'fresh')
    assert.equal(
      decideReuse(get({ 'cache-control': 'max-age=10' }), maxAge60, at(11), true).reason,
      'request-max-age',
    )
    assert.equal(decideReuse(get({ 'cache-control': 'max-age=0' }), maxAge60, at(0), true).action, 'fresh')
  })

  it('honours min-fresh (§5.2.1.3)', () => {
    assert.equal(
      decideReuse(get({ 'cache-control': 'min-fresh=50' }), maxAge60, at(10), true).action,
      'fresh',
    )
    const decision = decideReuse(get({ 'cache-control': 'min-fresh=51' }), maxAge60, at(10), true)
    assert.deepEqual([decision.action, decision.reason], ['revalidate', 'min-fresh'])
  })

  it('with max-stale, min-fresh may fall short by at most max-stale, fresh or stale alike (§5.2.1.2, §5.2.1.3)', () => {
    const both = get({ 'cache-control': 'min-fresh=30, max-stale=20' })
    // ttl 20 and -10: 10 and 40 short of min-fresh
    assert.deepEqual(pick(decideReuse(both, maxAge60, at(40), true)), ['fresh', 'fresh'])
    assert.deepEqual(pick(decideReuse(both, maxAge60, at(70), true)), ['revalidate', 'max-stale-exceeded'])
    // ttl -1: 31 short
    assert.deepEqual(pick(decideReuse(both, maxAge60, at(61), true)), ['revalidate', 'max-stale-exceeded'])
    const wider = get({ 'cache-control': 'min-fresh=30, max-stale=40' })
    assert.deepEqual(pick(decideReuse(wider, maxAge60, at(70), true)), ['stale', 'max-stale'])
    assert.deepEqual(pick(decideReuse(wider, maxAge60, at(71), true)), ['revalidate', 'max-stale-exceeded'])
    const any = get({ 'cache-control': 'min-fresh=30, max-stale' })
    assert.deepEqual(pick(decideReuse(any, maxAge60, at(50), true)), ['fresh', 'fresh'])
    assert.deepEqual(pick(decideReuse(any, maxAge60, at(500), true)), ['stale', 'max-stale'])
  })

  it('serves stale within request max-stale (§5.2.1.2)', () => {
    const bounded = decideReuse(get({ 'cache-control': 'max-stale=10' }), maxAge60, at(70), true)
    assert.deepEqual([bounded.action, bounded.reason, bounded.ttlSeconds], ['stale', 'max-stale', -10])
    assert.equal(
      decideReuse(get({ 'cache-control': 'max-stale=10' }), maxAge60, at(71), true).reason,
      'max-stale-exceeded',
    )
    assert.equal(decideReuse(get({ 'cache-control': 'max-stale' }), maxAge60, at(1e6), true).action, 'stale')
  })

  it('never serves stale past must-revalidate (§5.2.2.2)', () => {
    const response = stored({ 'cache-control': 'max-age=60, must-revalidate' })
    const decision = decideReuse(get({ 'cache-control': 'max-stale' }), response, at(61), false)
    assert.deepEqual([decision.action, decision.reason], ['revalidate', 'must-revalidate'])
  })

  it('never serves stale past proxy-revalidate or s-maxage in a shared cache (§5.2.2.8, §5.2.2.10)', () => {
    for (const cc of ['max-age=60, proxy-revalidate', 'max-age=60, s-maxage=60']) {
      const response = stored({ 'cache-control': cc })
      assert.equal(
        decideReuse(get({ 'cache-control': 'max-stale' }), response, at(61), true).reason,
        'proxy-revalidate',
      )
      assert.equal(
        decideReuse(get({ 'cache-control': 'max-stale' }), response, at(61), false).action,
        'stale',
      )
    }
  })

  it('uses heuristic freshness and Age', () => {
    const heuristic = stored({ date: formatHttpDate(T0), 'last-modified': formatHttpDate(T0 - 1_000_000) })
    assert.equal(decideReuse(get(), heuristic, at(99), false).action, 'fresh')
    assert.equal(decideReuse(get(), heuristic, at(100), false).action, 'revalidate')
    const aged = stored({ 'cache-control': 'max-age=60', age: '55' })
    assert.deepEqual(decideReuse(get(), aged, at(4), true).ttlSeconds, 1)
  })

  it('serves a fresh immutable response on a reload, not on a forced reload (RFC 8246 §2)', () => {
    const immutable = stored({ 'cache-control': 'max-age=60, immutable' })
    for (const cc of ['max-age=0', 'max-age=5']) {
      assert.deepEqual(decideReuse(get({ 'cache-control': cc }), immutable, at(10), true), {
        action: 'fresh',
        ageSeconds: 10,
        lifetimeSeconds: 60,
        ttlSeconds: 50,
        reason: 'fresh',
      })
    }
    assert.equal(
      decideReuse(get({ 'cache-control': 'no-cache' }), immutable, at(10), true).reason,
      'request-no-cache',
    )
    assert.equal(decideReuse(get({ pragma: 'no-cache' }), immutable, at(10), true).reason, 'request-no-cache')
    assert.equal(
      decideReuse(get({ 'cache-control': 'max-age=0' }), maxAge60, at(10), true).reason,
      'request-max-age',
    )
  })

  it('revalidates an immutable response once stale, and keeps min-fresh and response no-cache', () => {
    const immutable = stored({ 'cache-control': 'max-age=60, immutable' })
    assert.equal(
      decideReuse(get({ 'cache-control': 'max-age=0' }), immutable, at(60), true).reason,
      'request-max-age',
    )
    assert.equal(decideReuse(get(), immutable, at(60), true).reason, 'stale')
    assert.equal(
      decideReuse(get({ 'cache-control': 'max-age=0, min-fresh=51' }), immutable, at(10), true).reason,
      'min-fresh',
    )
    const noCache = stored({ 'cache-control': 'max-age=60, immutable, no-cache' })
    assert.equal(decideReuse(get(), noCache, at(10), true).reason, 'response-no-cache')
  })

  it('never invents a lifetime for immutable (RFC 8246 §2)', () => {
    const decision = decideReuse(
      get({ 'cache-control': 'max-age=0' }),
      stored({ 'cache-control': 'immutable' }),
      T0,
      true,
    )
    assert.deepEqual(
      [decision.action, decision.lifetimeSeconds, decision.reason],
      ['revalidate', 0, 'request-max-age'],
    )
  })

  it('revalidates when the stored response has no freshness at all', () => {
    assert.equal(decideReuse(get(), stored({}), T0, true).reason, 'stale')
  })

  it('never throws on arbitrary directives', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.integer({ min: -1e9, max: 1e12 }),
        (requestCc, responseCc, offset) => {
          const decision = decideReuse(
            get({ 'cache-control': requestCc }),
            stored({ 'cache-control': responseCc }),
            T0 + offset,
            true,
          )
          assert.ok(['fresh', 'stale', 'revalidate'].includes(decision.action))
        },
      ),
    )
  })
})

describe('staleWhileRevalidateAllows (RFC 5861 §3)', () => {
  const response = stored({ 'cache-control': 'max-age=60, stale-while-revalidate=30' })

  it('allows plain staleness within the window', () => {
    assert.equal(staleWhileRevalidateAllows(response, decideReuse(get(), response, at(90), true), true), true)
    assert.equal(
      staleWhileRevalidateAllows(response, decideReuse(get(), response, at(91), true), true),
      false,
    )
  })

  it('needs a stale-while-revalidate directive', () => {
    const plain = stored({ 'cache-control': 'max-age=60' })
    assert.equal(staleWhileRevalidateAllows(plain, decideReuse(get(), plain, at(61), true), true), false)
  })

  it('not to a request with max-age or min-fresh, or a max-stale it exceeds: it wants no such stale response (RFC 9111 §5.2.1.1–§5.2.1.3)', () => {
    for (const directives of ['max-age=200', 'min-fresh=10']) {
      const decision = decideReuse(get({ 'cache-control': directives }), response, at(70), true)
      assert.equal(decision.action, 'revalidate', directives)
      assert.equal(staleWhileRevalidateAllows(response, decision, true), false, directives)
    }
    const acceptsStale = decideReuse(
      get({ 'cache-control': 'max-age=200, max-stale=20' }),
      response,
      at(70),
      true,
    )
    assert.deepEqual([acceptsStale.action, acceptsStale.reason], ['stale', 'max-stale'])
    const tooStale = decideReuse(get({ 'cache-control': 'max-stale=5' }), response, at(70), true)
    assert.deepEqual([tooStale.action, tooStale.reason], ['revalidate', 'max-stale-exceeded'])
    assert.equal(staleWhileRevalidateAllows(response, tooStale, true), false)
  })

  it('does not apply to other revalidation reasons', () => {
    const decision = decideReuse(get({ 'cache-control': 'no-cache' }), response, at(61), true)
    assert.equal(staleWhileRevalidateAllows(response, decision, true), false)
    const fresh = decideReuse(get(), response, at(1), true)
    assert.equal(staleWhileRevalidateAllows(response, fresh, true), false)
  })

  it('is blocked by must-revalidate, and by proxy-revalidate / s-maxage in a shared cache', () => {
    const staleDecision: ReuseDecision = {
      action: 'revalidate',
      ageSeconds: 61,
      lifetimeSeconds: 60,
      ttlSeconds: -1,
      reason: 'stale',
    }
    const swr = 'max-age=60, stale-while-revalidate=30'
    const with_ = (extra: string) => stored({ 'cache-control': `${swr}, ${extra}` })
    assert.equal(staleWhileRevalidateAllows(with_('must-revalidate'), staleDecision, false), false)
    assert.equal(staleWhileRevalidateAllows(with_('proxy-revalidate'), staleDecision, true), false)
    assert.equal(staleWhileRevalidateAllows(with_('proxy-revalidate'), staleDecision, false), true)
    assert.equal(staleWhileRevalidateAllows(with_('s-maxage=60'), staleDecision, true), false)
  })
})

describe('staleIfErrorAllows (RFC 5861 §4)', () => {
  const response = stored({ 'cache-control': 'max-age=60, stale-if-error=30' })

  it('allows staleness within the response window', () => {
    assert.equal(staleIfErrorAllows(get(), response, at(90), true), true)
    assert.equal(staleIfErrorAllows(get(), response, at(91), true), false)
    assert.equal(staleIfErrorAllows(get(), response, at(10), true), true)
  })

  it('uses the request window, which wins over the response', () => {
    const plain = stored({ 'cache-control': 'max-age=60' })
    assert.equal(staleIfErrorAllows(get(), plain, at(61), true), false)
    assert.equal(staleIfErrorAllows(get({ 'cache-control': 'stale-if-error=5' }), plain, at(65), true), true)
    assert.equal(
      staleIfErrorAllows(get({ 'cache-control': 'stale-if-error=5' }), response, at(66), true),
      false,
    )
    assert.equal(
      staleIfErrorAllows(get({ 'cache-control': 'stale-if-error=100' }), response, at(150), true),
      true,
    )
  })

  it('is blocked by must-revalidate, bare no-cache, and shared proxy-revalidate / s-maxage', () => {
    const sie = 'max-age=60, stale-if-error=30'
    const with_ = (extra: string) => stored({ 'cache-control': `${sie}, ${extra}` })
    assert.equal(staleIfErrorAllows(get(), with_('must-revalidate'), at(61), false), false)
    assert.equal(staleIfErrorAllows(get(), with_('no-cache'), at(61), false), false)
    assert.equal(staleIfErrorAllows(get(), with_('proxy-revalidate'), at(61), true), false)
    assert.equal(staleIfErrorAllows(get(), with_('proxy-revalidate'), at(61), false), true)
    assert.equal(staleIfErrorAllows(get(), with_('s-maxage=60'), at(61), true), false)
  })

  it("is blocked by a request's no-cache, Pragma: no-cache or a max-age exceeded, fresh or not, unless the request asks stale-if-error", () => {
    // at 10 s the response is fresh, at 61 s stale: [request, allowed at 10 s, allowed at 61 s]
    for (const [requestHeaders, at10, at61] of [
      [{}, true, true],
      [{ 'cache-control': 'no-cache' }, false, false],
      [{ pragma: 'no-cache' }, false, false],
      [{ 'cache-control': 'max-age=0' }, false, false],
      [{ 'cache-control': 'max-age=30' }, true, false],
      [{ 'cache-control': 'no-cache, stale-if-error=60' }, true, true],
      [{ 'cache-control': 'max-age=0, stale-if-error=60' }, true, true],
    ] as const) {
      const name = JSON.stringify(requestHeaders)
      assert.equal(staleIfErrorAllows(get(requestHeaders), response, at(10), true), at10, `${name} at 10 s`)
      assert.equal(staleIfErrorAllows(get(requestHeaders), response, at(61), true), at61, `${name} at 61 s`)
    }
  })
})

describe('usefulUntilMs', () => {
  it('keeps responses with a validator until evicted', () => {
    assert.equal(usefulUntilMs(stored({ etag: '"a"' }), true), Number.MAX_SAFE_INTEGER)
    assert.equal(
      usefulUntilMs(stored({ 'last-modified': formatHttpDate(T0) }), true),
      Number.MAX_SAFE_INTEGER,
    )
    assert.equal(
      usefulUntilMs(stored({ 'cache-control': 'no-cache', etag: '"a"' }), true),
      Number.MAX_SAFE_INTEGER,
    )
  })

  it('ends at expiry plus the larger stale window', () => {
    assert.equal(usefulUntilMs(stored({ 'cache-control': 'max-age=60' }), true), at(60))
    assert.equal(
      usefulUntilMs(
        stored({ 'cache-control': 'max-age=60, stale-while-revalidate=30, stale-if-error=90' }),
        true,
      ),
      at(150),
    )
    assert.equal(
      usefulUntilMs(stored({ 'cache-control': 'max-age=60, stale-while-revalidate=30' }), true),
      at(90),
    )
  })

  it('accounts for the age the response arrived with', () => {
    assert.equal(usefulUntilMs(stored({ 'cache-control': 'max-age=60', age: '50' }), true), at(10))
    assert.equal(usefulUntilMs(stored({ 'cache-control': 'max-age=60', age: '100' }), true), at(-40))
  })

  it('drops the stale windows when staleness is forbidden', () => {
    const cc = 'max-age=60, stale-if-error=90'
    assert.equal(usefulUntilMs(stored({ 'cache-control': `${cc}, must-revalidate` }), false), at(60))
    assert.equal(usefulUntilMs(stored({ 'cache-control': `${cc}, s-maxage=60` }), true), at(60))
    assert.equal(usefulUntilMs(stored({ 'cache-control': `${cc}, s-maxage=60` }), false), at(150))
  })

  it('has no use for a bare no-cache response without a validator', () => {
    assert.equal(usefulUntilMs(stored({ 'cache-control': 'no-cache, max-age=60' }), true), T0)
  })
})

describe('isWorthStoring', () => {
  it('is true while the response has a use, false when it is useless on arrival', () => {
    assert.equal(isWorthStoring(stored({ 'cache-control': 'max-age=60' }), true), true)
    assert.equal(isWorthStoring(stored({ 'cache-control': 'max-age=0', etag: '"a"' }), true), true)
    assert.equal(isWorthStoring(stored({ 'cache-control': 'max-age=0, stale-if-error=5' }), true), true)
    assert.equal(isWorthStoring(stored({ 'cache-control': 'max-age=0' }), true), false)
    assert.equal(isWorthStoring(stored({ 'cache-control': 'no-cache, max-age=60' }), true), false)
  })
})

describe('wantsOwnAnswer (RFC 9111 §5.2.1.4, §5.2.1.1)', () => {
  it('is true for a request with no-cache (or Pragma: no-cache) or max-age=0', () => {
    assert.equal(wantsOwnAnswer(get({ 'cache-control': 'no-cache' })), true)
    assert.equal(wantsOwnAnswer(get({ pragma: 'no-cache' })), true)
    assert.equal(wantsOwnAnswer(get({ 'cache-control': 'max-age=0' })), true)
  })

  it('is false for a request that takes a response some seconds old, or says nothing', () => {
    assert.equal(wantsOwnAnswer(get()), false)
    assert.equal(wantsOwnAnswer(get({ 'cache-control': 'max-age=5' })), false)
    assert.equal(wantsOwnAnswer(get({ 'cache-control': 'min-fresh=60, max-stale' })), false)
  })
})

describe('validatedForEachUse (RFC 9111 §5.2.2.4, §4.2)', () => {
  it('is true for a bare no-cache response and one without a freshness lifetime', () => {
    assert.equal(validatedForEachUse(stored({ 'cache-control': 'no-cache, max-age=60' }), true), true)
    assert.equal(validatedForEachUse(stored({ 'cache-control': 'max-age=0, must-revalidate' }), true), true)
    assert.equal(validatedForEachUse(stored({ 'cache-control': 'max-age=60, s-maxage=0' }), true), true)
    assert.equal(validatedForEachUse(stored({ etag: '"a"' }), true), true)
  })

  it('is false for a response with a lifetime, stale or not, and one whose no-cache names fields', () => {
    const dated = { date: formatHttpDate(at(-120)) }
    assert.equal(validatedForEachUse(stored({ 'cache-control': 'max-age=60' }), true), false)
    assert.equal(validatedForEachUse(stored({ 'cache-control': 'max-age=60', ...dated }), true), false)
    assert.equal(validatedForEachUse(stored({ 'cache-control': 'max-age=60, s-maxage=0' }), false), false)
    assert.equal(validatedForEachUse(stored({ 'cache-control': 'max-age=60, no-cache="x-a"' }), true), false)
  })
})
