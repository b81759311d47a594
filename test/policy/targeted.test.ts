import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { freshnessLifetimeSeconds } from '../../lib/policy/freshness.js'
import { decideReuse, staleIfErrorAllows } from '../../lib/policy/lookup.js'
import { canStore } from '../../lib/policy/storable.js'
import { targetedView } from '../../lib/policy/targeted.js'
import type { Headers } from '../../lib/policy/types.js'

const T0 = Date.UTC(2024, 0, 1, 12)
const CDN = ['cdn-cache-control']

describe('targetedView (RFC 9213 §2.1)', () => {
  it('replaces Cache-Control by the targeted field and drops Expires', () => {
    const headers: Headers = {
      'cache-control': 'max-age=60, s-maxage=120',
      expires: 'Thu, 01 Jan 2099 00:00:00 GMT',
      'cdn-cache-control': 'max-age=600',
      etag: '"a"',
    }
    assert.deepEqual(targetedView(headers, CDN), {
      'cache-control': 'max-age=600',
      'cdn-cache-control': 'max-age=600',
      etag: '"a"',
    })
    assert.equal(headers['cache-control'], 'max-age=60, s-maxage=120')
  })

  it('gives the RFC 9213 §3.1 example lifetimes', () => {
    const headers: Headers = {
      'cache-control': 'max-age=60, s-maxage=120',
      'cdn-cache-control': 'max-age=600',
    }
    const lifetime = (view: Headers) =>
      freshnessLifetimeSeconds({ statusCode: 200, headers: view, responseTimeMs: T0 }, true)
    assert.equal(lifetime(targetedView(headers, CDN)), 600)
    assert.equal(lifetime(targetedView(headers, [])), 120)
  })

  it('lets the targeted field allow storage that Cache-Control forbids (RFC 9213 §3.1)', () => {
    const get = { method: 'GET', headers: {} }
    for (const cdn of ['max-age=600', 'none']) {
      const view = targetedView({ 'cache-control': 'no-store', 'cdn-cache-control': cdn }, CDN)
      assert.deepEqual(canStore(get, { statusCode: 200, headers: view }, true), { storable: true }, cdn)
    }
    const untargeted = targetedView({ 'cache-control': 'no-store' }, CDN)
    assert.deepEqual(canStore(get, { statusCode: 200, headers: untargeted }, true), {
      storable: false,
      reason: 'no-store',
    })
  })

  it('applies private, no-cache and must-revalidate from the targeted field (RFC 9213 §2.1)', () => {
    const get = { method: 'GET', headers: {} }
    const viewOf = (cdn: string) =>
      targetedView(
        { 'cache-control': 'max-age=600, stale-if-error=600', 'cdn-cache-control': cdn, etag: '"e"' },
        CDN,
      )
    const privateView = viewOf('private, max-age=60')
    assert.deepEqual(canStore(get, { statusCode: 200, headers: privateView }, true), {
      storable: false,
      reason: 'private',
    })
    const stored = (cdn: string) => ({
      statusCode: 200,
      statusMessage: 'OK',
      headers: viewOf(cdn),
      requestTimeMs: T0,
      responseTimeMs: T0,
      varyValues: {},
    })
    assert.equal(decideReuse(get, stored('no-cache, max-age=60'), T0 + 1000, true).action, 'revalidate')
    assert.equal(decideReuse(get, stored('max-age=60'), T0 + 1000, true).action, 'fresh')
    const stale = T0 + 120_000
    const maxStale = { method: 'GET', headers: { 'cache-control': 'max-stale' } }
    assert.equal(decideReuse(maxStale, stored('max-age=60'), stale, true).action, 'stale')
    assert.equal(
      decideReuse(maxStale, stored('max-age=60, must-revalidate'), stale, true).action,
      'revalidate',
    )
    assert.equal(staleIfErrorAllows(get, stored('max-age=60, stale-if-error=600'), stale, true), true)
    assert.equal(staleIfErrorAllows(get, stored('max-age=60, must-revalidate'), stale, true), false)
  })

  it('uses the first valid field in target-list order', () => {
    const headers: Headers = {
      'a-cache-control': 'Max-Age=5',
      'cdn-cache-control': 'max-age=600',
      'b-cache-control': 'max-age=1',
    }
    assert.equal(
      targetedView(headers, ['a-cache-control', 'cdn-cache-control', 'b-cache-control'])['cache-control'],
      'max-age=600',
    )
    assert.equal(
      targetedView(headers, ['b-cache-control', 'cdn-cache-control'])['cache-control'],
      'max-age=1',
    )
    assert.equal(targetedView(headers, ['CDN-Cache-Control'])['cache-control'], 'max-age=600')
  })

  it('keeps several field lines and accepts the dictionary value forms', () => {
    const lines = ['max-age=600', 'stale-if-error=60, private="set-cookie"']
    assert.deepEqual(targetedView({ 'cdn-cache-control': lines }, CDN)['cache-control'], lines)
    for (const value of ['no-store', 'must-revalidate, max-age=0', 'a="x\\"y", b=1.5, c=token/x:y', '*']) {
      assert.equal(targetedView({ 'cdn-cache-control': value }, CDN)['cache-control'], value, value)
    }
  })

  it('ignores the parameters of a member (RFC 8941 §3.1.2): no directive defines one', () => {
    for (const [value, read] of [
      ['max-age=600;x=1', 'max-age=600'],
      ['max-age=60, foo;bar', 'max-age=60, foo'],
      ['no-store; a="x;y"; b, max-age=5;c=1.5', 'no-store, max-age=5'],
    ] as const) {
      assert.equal(targetedView({ 'cdn-cache-control': value }, CDN)['cache-control'], read, value)
    }
  })

  it('reads a Boolean true as the directive alone and drops a false one (RFC 9213 §2.2, RFC 8941 §3.3.6)', () => {
    for (const [value, read] of [
      ['no-store=?1', 'no-store'],
      ['private=?1, max-age=60', 'private, max-age=60'],
      ['no-store=?0, max-age=60', 'max-age=60'],
      ['max-age=60, must-revalidate=?1;x=1', 'max-age=60, must-revalidate'],
      ['no-store=?0', ''],
    ] as const) {
      assert.equal(targetedView({ 'cdn-cache-control': value }, CDN)['cache-control'], read, value)
    }
    const view = targetedView({ 'cache-control': 'max-age=60', 'cdn-cache-control': 'no-store=?1' }, CDN)
    assert.equal(
      canStore({ method: 'GET', headers: {} }, { statusCode: 200, headers: view }, true).storable,
      false,
    )
  })

  it('returns the same headers when no target field is valid and non-empty (RFC 9213 §2.2)', () => {
    const headers: Headers = { 'cache-control': 'max-age=60', expires: '0' }
    assert.equal(targetedView(headers, CDN), headers)
    assert.equal(targetedView(headers, []), headers)
    for (const value of [
      '',
      ' , ',
      'Max-Age=600',
      'max-age=600;X=1',
      'max-age=600;x==1',
      'max-age==600',
      'max-age=',
      'max age=600',
      '1max-age=600',
      'private="x',
      'a="x"y',
      // RFC 8941 §4.2.2: a Dictionary has no empty member
      'no-store,',
      ', no-store',
      'no-store, ,',
      'max-age=600,, public',
    ]) {
      const withField = { ...headers, 'cdn-cache-control': value }
      assert.equal(targetedView(withField, CDN), withField, value)
    }
    const undefinedField = { ...headers, 'cdn-cache-control': undefined }
    assert.equal(targetedView(undefinedField, CDN), undefinedField)
  })
})
