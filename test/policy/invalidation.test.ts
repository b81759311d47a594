import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { invalidatesOnResponse, invalidationTargets, isSafeMethod } from '../../lib/policy/invalidation.js'

describe('isSafeMethod (RFC 9110 §9.2.1)', () => {
  it('knows the safe methods, case-sensitively', () => {
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'TRACE']) assert.equal(isSafeMethod(method), true, method)
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'CONNECT', 'get', '']) {
      assert.equal(isSafeMethod(method), false, method)
    }
  })
})

describe('invalidatesOnResponse (RFC 9111 §4.4)', () => {
  it('invalidates on unsafe methods with 2xx or 3xx', () => {
    assert.equal(invalidatesOnResponse('POST', 200), true)
    assert.equal(invalidatesOnResponse('DELETE', 204), true)
    assert.equal(invalidatesOnResponse('PUT', 303), true)
    assert.equal(invalidatesOnResponse('PATCH', 399), true)
  })

  it('does not invalidate on errors, informational statuses or safe methods', () => {
    assert.equal(invalidatesOnResponse('POST', 199), false)
    assert.equal(invalidatesOnResponse('POST', 400), false)
    assert.equal(invalidatesOnResponse('POST', 500), false)
    assert.equal(invalidatesOnResponse('GET', 200), false)
  })
})

describe('invalidationTargets (RFC 9111 §4.4)', () => {
  const url = 'https://example.com/a/b?x=1#frag'

  it('returns the request URL without its fragment', () => {
    assert.deepEqual(invalidationTargets(url, {}), ['https://example.com/a/b?x=1'])
  })

  it('adds same-origin Location and Content-Location, resolved', () => {
    assert.deepEqual(invalidationTargets(url, { location: '../c#top', 'content-location': '/d?y=2' }), [
      'https://example.com/a/b?x=1',
      'https://example.com/c',
      'https://example.com/d?y=2',
    ])
  })

  it('skips other origins', () => {
    const headers = {
      location: 'https://other.example/a',
      'content-location': 'http://example.com/a/b',
    }
    assert.deepEqual(invalidationTargets(url, headers), ['https://example.com/a/b?x=1'])
    assert.deepEqual(invalidationTargets(url, { location: 'https://example.com:8443/' }), [
      'https://example.com/a/b?x=1',
    ])
  })

  it('dedupes', () => {
    assert.deepEqual(
      invalidationTargets(url, { location: '?x=1', 'content-location': 'https://EXAMPLE.com/a/b?x=1' }),
      ['https://example.com/a/b?x=1'],
    )
  })

  it('skips malformed, empty and opaque locations', () => {
    const headers = { location: 'http://[::1', 'content-location': '' }
    assert.deepEqual(invalidationTargets(url, headers), ['https://example.com/a/b?x=1'])
    assert.deepEqual(invalidationTargets('data:text/plain,x', { location: 'data:text/plain,y' }), [
      'data:text/plain,x',
    ])
  })

  it('returns [] for a malformed request URL', () => {
    assert.deepEqual(invalidationTargets('not a url', { location: '/x' }), [])
  })

  it('never throws', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), (requestUrl, location, contentLocation) => {
        invalidationTargets(requestUrl, { location, 'content-location': contentLocation })
        invalidationTargets(url, { location, 'content-location': contentLocation })
      }),
    )
  })
})
