import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import {
  answersFromCache,
  evaluateClientConditional,
  notModifiedHeaders,
  withoutClientConditionals,
} from '../../lib/policy/conditional.js'
import { formatHttpDate } from '../../lib/policy/dates.js'
import type { Headers } from '../../lib/policy/types.js'

const T0 = Date.UTC(2024, 0, 1, 12)
const LAST_MODIFIED = 'Sat, 29 Oct 1994 19:43:31 GMT'
const LAST_MODIFIED_MS = Date.UTC(1994, 9, 29, 19, 43, 31)

const stored = (headers: Headers, statusCode?: number) => ({
  headers,
  responseTimeMs: T0,
  ...(statusCode === undefined ? {} : { statusCode }),
})

describe('evaluateClientConditional: If-None-Match (RFC 9110 §13.1.2)', () => {
  const tagged = stored({ etag: '"xyzzy"', 'last-modified': LAST_MODIFIED })

  it('answers the RFC examples by weak comparison', () => {
    for (const value of [
      '"xyzzy"',
      'W/"xyzzy"',
      '"xyzzy", "r2d2xxxx", "c3piozzzz"',
      'W/"xyzzy", W/"r2d2xxxx", W/"c3piozzzz"',
      '*',
    ]) {
      assert.equal(evaluateClientConditional({ 'if-none-match': value }, tagged), 'not-modified', value)
    }
    assert.equal(
      evaluateClientConditional({ 'if-none-match': '"xyzzy"' }, stored({ etag: 'W/"xyzzy"' })),
      'not-modified',
    )
  })

  it('finds a tag in any field line', () => {
    assert.equal(evaluateClientConditional({ 'if-none-match': ['"a"', ' "xyzzy" '] }, tagged), 'not-modified')
  })

  it('answers full when no tag matches or nothing is stored to match', () => {
    assert.equal(evaluateClientConditional({ 'if-none-match': '"r2d2xxxx"' }, tagged), 'full')
    assert.equal(evaluateClientConditional({ 'if-none-match': '"xyzzy"' }, stored({})), 'full')
    assert.equal(evaluateClientConditional({ 'if-none-match': '"xyzzy"' }, stored({ etag: '' })), 'full')
    assert.equal(evaluateClientConditional({ 'if-none-match': '' }, tagged), 'full')
    assert.equal(evaluateClientConditional({ 'if-none-match': '"xyzzy' }, tagged), 'full')
  })

  it('lets * match a stored response without an ETag', () => {
    assert.equal(evaluateClientConditional({ 'if-none-match': '*' }, stored({})), 'not-modified')
  })

  it('ignores If-Modified-Since when If-None-Match is present (§13.1.3)', () => {
    const request = { 'if-none-match': '"other"', 'if-modified-since': formatHttpDate(T0) }
    assert.equal(evaluateClientConditional(request, tagged), 'full')
    assert.equal(
      evaluateClientConditional({ ...request, 'if-none-match': '"xyzzy"' }, tagged),
      'not-modified',
    )
  })
})

describe('evaluateClientConditional: If-Modified-Since (RFC 9110 §13.1.3, RFC 9111 §4.3.2)', () => {
  const modified = stored({ 'last-modified': LAST_MODIFIED, date: formatHttpDate(T0) })

  it('is not modified when Last-Modified is at or before the date', () => {
    assert.equal(evaluateClientConditional({ 'if-modified-since': LAST_MODIFIED }, modified), 'not-modified')
    const later = formatHttpDate(LAST_MODIFIED_MS + 1000)
    assert.equal(evaluateClientConditional({ 'if-modified-since': later }, modified), 'not-modified')
    const earlier = formatHttpDate(LAST_MODIFIED_MS - 1000)
    assert.equal(evaluateClientConditional({ 'if-modified-since': earlier }, modified), 'full')
  })

  it('accepts the obsolete date formats', () => {
    for (const value of ['Saturday, 29-Oct-94 19:43:31 GMT', 'Sat Oct 29 19:43:31 1994']) {
      assert.equal(evaluateClientConditional({ 'if-modified-since': value }, modified), 'not-modified', value)
    }
  })

  it('ignores an invalid date or several field lines', () => {
    for (const value of ['yesterday', '', [LAST_MODIFIED, LAST_MODIFIED]]) {
      assert.equal(evaluateClientConditional({ 'if-modified-since': value }, modified), 'full')
    }
  })

  it('uses the stored Date without a valid Last-Modified', () => {
    const dated = stored({ date: formatHttpDate(T0 - 60_000), 'last-modified': 'garbage' })
    assert.equal(
      evaluateClientConditional({ 'if-modified-since': formatHttpDate(T0 - 60_000) }, dated),
      'not-modified',
    )
    assert.equal(
      evaluateClientConditional({ 'if-modified-since': formatHttpDate(T0 - 61_000) }, dated),
      'full',
    )
  })

  it('uses the response time, to the second, without Date', () => {
    const received = { headers: {}, responseTimeMs: T0 + 999 }
    assert.equal(
      evaluateClientConditional({ 'if-modified-since': formatHttpDate(T0) }, received),
      'not-modified',
    )
    assert.equal(
      evaluateClientConditional({ 'if-modified-since': formatHttpDate(T0 - 1000) }, received),
      'full',
    )
  })
})

describe('evaluateClientConditional: other cases', () => {
  it('answers full without conditionals', () => {
    assert.equal(evaluateClientConditional({}, stored({ etag: '"a"' })), 'full')
    assert.equal(evaluateClientConditional({ 'if-none-match': undefined }, stored({ etag: '"a"' })), 'full')
  })

  it('ignores preconditions for a stored non-2xx status (RFC 9110 §13.2.1)', () => {
    assert.equal(evaluateClientConditional({ 'if-none-match': '*' }, stored({}, 404)), 'full')
    assert.equal(evaluateClientConditional({ 'if-none-match': '*' }, stored({}, 301)), 'full')
    assert.equal(evaluateClientConditional({ 'if-none-match': '*' }, stored({}, 204)), 'not-modified')
    assert.equal(evaluateClientConditional({ 'if-none-match': '*' }, stored({}, 200)), 'not-modified')
  })

  it('never throws on arbitrary fields', () => {
    const value = fc.oneof(fc.string(), fc.array(fc.string()), fc.constant(undefined))
    fc.assert(
      fc.property(value, value, value, value, fc.integer(), (inm, ims, etag, lastModified, time) => {
        const outcome = evaluateClientConditional(
          { 'if-none-match': inm, 'if-modified-since': ims },
          { headers: { etag, 'last-modified': lastModified }, responseTimeMs: time },
        )
        assert.ok(outcome === 'full' || outcome === 'not-modified')
      }),
    )
  })
})

describe('answersFromCache (RFC 9111 §4.3.2)', () => {
  it('accepts If-None-Match, If-Modified-Since, If-Range and no conditionals', () => {
    assert.equal(answersFromCache({}), true)
    assert.equal(
      answersFromCache({ 'if-none-match': '"a"', 'if-modified-since': LAST_MODIFIED, 'if-range': '"a"' }),
      true,
    )
    assert.equal(answersFromCache({ 'if-match': undefined }), true)
  })

  it('leaves If-Match and If-Unmodified-Since to the origin', () => {
    assert.equal(answersFromCache({ 'if-match': '"a"' }), false)
    assert.equal(answersFromCache({ 'if-unmodified-since': LAST_MODIFIED, 'if-none-match': '"a"' }), false)
  })
})

describe('notModifiedHeaders (RFC 9110 §15.4.5)', () => {
  it('keeps every stored field but the body-describing ones', () => {
    const headers: Headers = {
      'cache-control': 'max-age=60',
      'content-location': '/a.json',
      date: formatHttpDate(T0),
      etag: '"a"',
      expires: formatHttpDate(T0 + 60_000),
      vary: 'accept',
      'last-modified': LAST_MODIFIED,
      'set-cookie': ['a=1', 'b=2'],
      'x-custom': 'kept',
      'content-length': '10',
      'content-type': 'application/json',
      'content-encoding': 'gzip',
      'content-range': 'bytes 0-9/10',
      'content-language': 'en',
      'transfer-encoding': 'chunked',
      trailer: 'x-checksum',
      absent: undefined,
    }
    assert.deepEqual(notModifiedHeaders(headers), {
      'cache-control': 'max-age=60',
      'content-location': '/a.json',
      date: formatHttpDate(T0),
      etag: '"a"',
      expires: formatHttpDate(T0 + 60_000),
      vary: 'accept',
      'last-modified': LAST_MODIFIED,
      'set-cookie': ['a=1', 'b=2'],
      'x-custom': 'kept',
    })
  })

  it('copies arrays', () => {
    const lines = ['a=1']
    const result = notModifiedHeaders({ 'set-cookie': lines })
    assert.notEqual(result['set-cookie'], lines)
  })
})

describe('withoutClientConditionals', () => {
  it('drops If-None-Match and If-Modified-Since only, without touching the input', () => {
    const headers: Headers = {
      'if-none-match': '"a"',
      'if-modified-since': LAST_MODIFIED,
      'if-match': '"b"',
      'if-range': '"c"',
      accept: ['text/html', 'application/json'],
    }
    assert.deepEqual(withoutClientConditionals(headers), {
      'if-match': '"b"',
      'if-range': '"c"',
      accept: ['text/html', 'application/json'],
    })
    assert.equal(headers['if-none-match'], '"a"')
  })
})
