import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { formatHttpDate } from '../../lib/policy/dates.js'
import {
  freshnessLifetimeSeconds,
  HEURISTICALLY_CACHEABLE_STATUSES,
  hasExplicitExpiration,
} from '../../lib/policy/freshness.js'
import type { Headers } from '../../lib/policy/types.js'

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0)
const date = (offsetSeconds: number) => formatHttpDate(T0 + offsetSeconds * 1000)
const response = (headers: Headers, statusCode = 200) => ({ statusCode, headers, responseTimeMs: T0 })

describe('HEURISTICALLY_CACHEABLE_STATUSES (RFC 9110 §15.1)', () => {
  it('lists exactly the heuristically cacheable statuses', () => {
    assert.deepEqual(
      [...HEURISTICALLY_CACHEABLE_STATUSES],
      [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501],
    )
  })
})

describe('freshnessLifetimeSeconds (RFC 9111 §4.2.1)', () => {
  it('uses s-maxage in a shared cache only', () => {
    const headers = { 'cache-control': 's-maxage=100, max-age=10' }
    assert.equal(freshnessLifetimeSeconds(response(headers), true), 100)
    assert.equal(freshnessLifetimeSeconds(response(headers), false), 10)
  })

  it('prefers max-age over Expires', () => {
    const headers = { 'cache-control': 'max-age=10', date: date(0), expires: date(1000) }
    assert.equal(freshnessLifetimeSeconds(response(headers), true), 10)
  })

  it('treats an invalid max-age as stale', () => {
    const headers = { 'cache-control': 'max-age=abc', expires: date(1000), date: date(0) }
    assert.equal(freshnessLifetimeSeconds(response(headers), false), 0)
  })

  it('uses Expires − Date', () => {
    assert.equal(freshnessLifetimeSeconds(response({ date: date(-10), expires: date(50) }), false), 60)
  })

  it('uses Expires − response time without a valid Date', () => {
    assert.equal(freshnessLifetimeSeconds(response({ expires: date(30) }), false), 30)
    assert.equal(freshnessLifetimeSeconds(response({ expires: date(30), date: 'junk' }), false), 30)
  })

  it('floors an Expires in the past at 0', () => {
    assert.equal(freshnessLifetimeSeconds(response({ date: date(0), expires: date(-30) }), false), 0)
  })

  it('treats an invalid Expires as already expired (§5.3), without a heuristic', () => {
    const headers = { expires: '0', 'last-modified': date(-100_000), date: date(0) }
    assert.equal(freshnessLifetimeSeconds(response(headers), false), 0)
  })

  it("treats an Expires with a mail date's zone (+0000, UTC) as invalid (§5.3), where Date and Last-Modified take it", () => {
    const gmt = date(30)
    for (const zone of ['+0000', 'UTC']) {
      const expires = gmt.replace(/GMT$/, zone)
      assert.equal(freshnessLifetimeSeconds(response({ date: date(0), expires }), false), 0, zone)
      const lastModified = date(-100_000).replace(/GMT$/, zone)
      assert.equal(
        freshnessLifetimeSeconds(response({ date: date(0), 'last-modified': lastModified }), false),
        10_000,
      )
    }
  })

  it('accepts repeated identical Expires lines but not differing ones', () => {
    assert.equal(freshnessLifetimeSeconds(response({ expires: [date(30), ` ${date(30)}`] }), false), 30)
    assert.equal(freshnessLifetimeSeconds(response({ expires: [date(30), date(60)] }), false), 0)
  })

  it('uses 10% of Date − Last-Modified as a heuristic (§4.2.2)', () => {
    const headers = { date: date(0), 'last-modified': date(-100_000) }
    assert.equal(freshnessLifetimeSeconds(response(headers), false), 10_000)
  })

  it('measures the heuristic from the response time without Date, with no cap', () => {
    const headers = { 'last-modified': date(-10 * 365 * 86400) }
    assert.equal(freshnessLifetimeSeconds(response(headers), false), 365 * 86400)
  })

  it('floors the heuristic at 0 for a Last-Modified in the future', () => {
    assert.equal(freshnessLifetimeSeconds(response({ date: date(0), 'last-modified': date(100) }), false), 0)
  })

  it('applies the heuristic only to cacheable statuses or public responses', () => {
    const headers = { date: date(0), 'last-modified': date(-1000) }
    assert.equal(freshnessLifetimeSeconds(response(headers, 302), false), 0)
    assert.equal(
      freshnessLifetimeSeconds(response({ ...headers, 'cache-control': 'public' }, 302), false),
      100,
    )
    assert.equal(freshnessLifetimeSeconds(response(headers, 404), false), 100)
  })

  it('needs a valid Last-Modified for the heuristic', () => {
    assert.equal(freshnessLifetimeSeconds(response({ date: date(0) }), false), 0)
    assert.equal(freshnessLifetimeSeconds(response({ 'last-modified': 'yesterday' }), false), 0)
  })

  it('does not invent a lifetime for immutable', () => {
    assert.equal(freshnessLifetimeSeconds(response({ 'cache-control': 'immutable' }), false), 0)
  })

  it('is never negative and never throws', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), fc.string(), (cc, expires, lm, d) => {
        const headers = { 'cache-control': cc, expires, 'last-modified': lm, date: d }
        assert.ok(freshnessLifetimeSeconds(response(headers), true) >= 0)
      }),
    )
  })
})

describe('hasExplicitExpiration', () => {
  it('counts s-maxage in shared caches, max-age and any Expires', () => {
    assert.equal(hasExplicitExpiration({ 'cache-control': 's-maxage=5' }, true), true)
    assert.equal(hasExplicitExpiration({ 'cache-control': 's-maxage=5' }, false), false)
    assert.equal(hasExplicitExpiration({ 'cache-control': 'max-age=0' }, false), true)
    assert.equal(hasExplicitExpiration({ expires: 'invalid' }, false), true)
    assert.equal(hasExplicitExpiration({ 'cache-control': 'public' }, true), false)
    assert.equal(hasExplicitExpiration({}, true), false)
  })
})
