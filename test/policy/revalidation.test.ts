import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { formatHttpDate } from '../../lib/policy/dates.js'
import { listMembers } from '../../lib/policy/headers.js'
import { HOP_BY_HOP_FIELDS, withConnectionNominated } from '../../lib/policy/hop-by-hop.js'
import {
  conditionalHeaders,
  freshenedHeaders,
  hasValidator,
  isClientConditional,
  notModifiedMatches,
  sameStrongValidator,
  withValidationTimes,
} from '../../lib/policy/revalidation.js'
import type { Headers, StoredResponse } from '../../lib/policy/types.js'

const T0 = Date.UTC(2024, 0, 1, 12)
const LAST_MODIFIED = 'Sun, 06 Nov 1994 08:49:37 GMT'

function stored(headers: Headers): StoredResponse {
  return {
    statusCode: 200,
    statusMessage: 'OK',
    headers,
    requestTimeMs: T0,
    responseTimeMs: T0,
    varyValues: {},
  }
}

const notModified = (headers: Headers) => ({ statusCode: 304, headers })

describe('hasValidator', () => {
  it('accepts an ETag or a valid Last-Modified', () => {
    assert.equal(hasValidator({ etag: 'W/"a"' }), true)
    assert.equal(hasValidator({ 'last-modified': LAST_MODIFIED }), true)
    assert.equal(hasValidator({ 'last-modified': 'Sunday, 06-Nov-94 08:49:37 GMT' }), true)
  })

  it('rejects empty ETags, invalid Last-Modified and nothing', () => {
    assert.equal(hasValidator({ etag: '  ' }), false)
    assert.equal(hasValidator({ 'last-modified': 'yesterday' }), false)
    assert.equal(hasValidator({}), false)
  })
})

describe('conditionalHeaders (RFC 9111 §4.3.1)', () => {
  it('sends If-None-Match and If-Modified-Since when both validators exist', () => {
    assert.deepEqual(conditionalHeaders(stored({ etag: ' "v1" ', 'last-modified': LAST_MODIFIED })), {
      'if-none-match': '"v1"',
      'if-modified-since': LAST_MODIFIED,
    })
  })

  it('sends one condition per validator present', () => {
    assert.deepEqual(conditionalHeaders(stored({ etag: 'W/"v1"' })), { 'if-none-match': 'W/"v1"' })
    assert.deepEqual(conditionalHeaders(stored({ 'last-modified': LAST_MODIFIED })), {
      'if-modified-since': LAST_MODIFIED,
    })
  })

  it('normalises an obsolete Last-Modified to an IMF-fixdate', () => {
    assert.deepEqual(conditionalHeaders(stored({ 'last-modified': 'Sun Nov  6 08:49:37 1994' })), {
      'if-modified-since': LAST_MODIFIED,
    })
  })

  it('sends nothing without valid validators', () => {
    assert.deepEqual(conditionalHeaders(stored({ 'last-modified': 'garbage', etag: '' })), {})
    assert.deepEqual(conditionalHeaders(stored({})), {})
  })
})

describe('notModifiedMatches (RFC 9111 §4.3.4)', () => {
  const withBoth = stored({ etag: '"a"', 'last-modified': LAST_MODIFIED })

  it('compares a weak ETag in the 304 weakly, a strong one strongly (RFC 9110 §8.8.3.2)', () => {
    assert.equal(notModifiedMatches(withBoth, notModified({ etag: '"a"' })), true)
    assert.equal(notModifiedMatches(withBoth, notModified({ etag: 'W/"a"' })), true)
    assert.equal(notModifiedMatches(stored({ etag: 'W/"a"' }), notModified({ etag: 'W/"a"' })), true)
    // a strong validator identifies only a response stored with the same strong one
    assert.equal(notModifiedMatches(stored({ etag: 'W/"a"' }), notModified({ etag: '"a"' })), false)
    assert.equal(notModifiedMatches(withBoth, notModified({ etag: '"b"' })), false)
    assert.equal(notModifiedMatches(stored({}), notModified({ etag: '"a"' })), false)
  })

  it('lets the ETag decide even when Last-Modified differs', () => {
    assert.equal(
      notModifiedMatches(withBoth, notModified({ etag: '"a"', 'last-modified': formatHttpDate(T0) })),
      true,
    )
  })

  it('compares Last-Modified without an ETag', () => {
    assert.equal(notModifiedMatches(withBoth, notModified({ 'last-modified': LAST_MODIFIED })), true)
    assert.equal(
      notModifiedMatches(withBoth, notModified({ 'last-modified': 'Sun Nov  6 08:49:37 1994' })),
      true,
    )
    assert.equal(notModifiedMatches(withBoth, notModified({ 'last-modified': formatHttpDate(T0) })), false)
    assert.equal(notModifiedMatches(withBoth, notModified({ 'last-modified': 'junk' })), false)
    assert.equal(notModifiedMatches(stored({}), notModified({ 'last-modified': LAST_MODIFIED })), false)
  })

  it('compares unparsable stored Last-Modified values as text', () => {
    assert.equal(
      notModifiedMatches(stored({ 'last-modified': 'v7' }), notModified({ 'last-modified': 'v7' })),
      true,
    )
    assert.equal(
      notModifiedMatches(stored({ 'last-modified': 'v7' }), notModified({ 'last-modified': 'v8' })),
      false,
    )
  })

  it('matches a 304 without validators', () => {
    assert.equal(notModifiedMatches(withBoth, notModified({})), true)
    assert.equal(notModifiedMatches(withBoth, notModified({ etag: '' })), true)
  })
})

describe('sameStrongValidator (RFC 9111 §4.3.4)', () => {
  it('is true only for one strong ETag on both sides', () => {
    assert.equal(sameStrongValidator(stored({ etag: '"a"' }), notModified({ etag: '"a"' })), true)
    assert.equal(sameStrongValidator(stored({ etag: '"a"' }), notModified({ etag: '"b"' })), false)
    assert.equal(sameStrongValidator(stored({ etag: 'W/"a"' }), notModified({ etag: 'W/"a"' })), false)
    assert.equal(sameStrongValidator(stored({ etag: '"a"' }), notModified({ etag: 'W/"a"' })), false)
    assert.equal(sameStrongValidator(stored({}), notModified({ etag: '"a"' })), false)
    const lastModified = { 'last-modified': LAST_MODIFIED }
    assert.equal(sameStrongValidator(stored(lastModified), notModified(lastModified)), false)
  })
})

describe('freshenedHeaders (RFC 9111 §3.2, §4.3.4)', () => {
  it('replaces stored fields with the 304 fields and adds new ones', () => {
    const storedHeaders: Headers = {
      date: 'old',
      'cache-control': 'max-age=60',
      'content-type': 'text/plain',
      'x-multi': ['1', '2'],
      etag: '"a"',
    }
    const received: Headers = { date: 'new', 'cache-control': ['max-age=120'], 'x-multi': '3', 'x-new': 'n' }
    assert.deepEqual(freshenedHeaders(storedHeaders, received), {
      date: 'new',
      'cache-control': ['max-age=120'],
      'content-type': 'text/plain',
      'x-multi': '3',
      etag: '"a"',
      'x-new': 'n',
    })
  })

  it('never takes hop-by-hop, Connection-nominated or body-describing fields from the 304', () => {
    const storedHeaders: Headers = {
      'content-length': '10',
      'content-encoding': 'gzip',
      'content-range': 'bytes 0-9/10',
      'x-token': 'kept',
    }
    const received: Headers = {
      'content-length': '0',
      'content-encoding': 'br',
      'content-range': 'bytes */10',
      'transfer-encoding': 'chunked',
      connection: 'x-token',
      'keep-alive': 'timeout=5',
      'x-token': 'hop',
      'content-type': 'text/html',
      age: '3',
    }
    assert.deepEqual(freshenedHeaders(storedHeaders, received), {
      'content-length': '10',
      'content-encoding': 'gzip',
      'content-range': 'bytes 0-9/10',
      'x-token': 'kept',
      'content-type': 'text/html',
      age: '3',
    })
  })

  it('ignores undefined 304 values and does not alias arrays', () => {
    const lines = ['a']
    const result = freshenedHeaders({ vary: 'accept', link: lines }, { vary: undefined })
    assert.deepEqual(result, { vary: 'accept', link: ['a'] })
    assert.notEqual(result.link, lines)
  })

  it('matches the rule as written: each 304 field but the excluded replaces its stored lines', () => {
    const names = fc.constantFrom(
      'ETag',
      'etag',
      'Date',
      'x-a',
      'X-A',
      'content-length',
      'keep-alive',
      '__proto__',
    )
    const value = fc.option(fc.oneof(fc.constantFrom('1', '2'), fc.array(fc.constantFrom('1', '2'))), {
      nil: undefined,
    })
    const headers = fc.dictionary(names, value)
    const connection = fc.option(fc.constantFrom('x-a', 'X-A, etag', ''), { nil: undefined })
    fc.assert(
      fc.property(headers, headers, connection, (stored: Headers, received: Headers, nominating) => {
        if (nominating !== undefined) received.connection = nominating
        const excluded = new Set([
          ...HOP_BY_HOP_FIELDS,
          'content-length',
          'content-encoding',
          'content-range',
          ...listMembers(received, 'connection').map((name) => name.toLowerCase()),
        ])
        const updates = Object.entries(received).filter(
          ([name, lines]) => lines !== undefined && !excluded.has(name.toLowerCase()),
        )
        const replaced = new Set(updates.map(([name]) => name.toLowerCase()))
        const kept = Object.entries(stored).filter(
          ([name, lines]) => lines !== undefined && !replaced.has(name.toLowerCase()),
        )
        const result = freshenedHeaders(stored, received)
        assert.deepEqual(Object.entries(result), [...kept, ...updates])
        assert.equal(Object.getPrototypeOf(result), Object.prototype)
      }),
    )
  })
})

describe('withConnectionNominated (RFC 9110 §7.6.1)', () => {
  it('adds the lower-cased names Connection lists, and returns the base set itself without one', () => {
    assert.equal(withConnectionNominated(HOP_BY_HOP_FIELDS, { etag: '"a"' }), HOP_BY_HOP_FIELDS)
    assert.equal(withConnectionNominated(HOP_BY_HOP_FIELDS, { connection: 'keep-alive' }), HOP_BY_HOP_FIELDS)
    const added = withConnectionNominated(HOP_BY_HOP_FIELDS, { connection: ['close, X-Trace', 'x-debug'] })
    assert.deepEqual(
      [...added].filter((name) => !HOP_BY_HOP_FIELDS.has(name)),
      ['close', 'x-trace', 'x-debug'],
    )
    assert.equal(added.size, HOP_BY_HOP_FIELDS.size + 3)
  })
})

describe('isClientConditional', () => {
  it('detects each conditional request field', () => {
    for (const name of [
      'if-none-match',
      'if-modified-since',
      'if-match',
      'if-unmodified-since',
      'if-range',
    ]) {
      assert.equal(isClientConditional({ [name]: 'x' }), true, name)
    }
  })

  it('is false without them', () => {
    assert.equal(isClientConditional({ accept: '*/*', 'if-none-match': undefined }), false)
  })
})

describe('withValidationTimes (RFC 9111 §4.2.3)', () => {
  it('without Date or Age on the validating response: neither stored one is kept', () => {
    const freshened: Headers = { date: 'Mon, 01 Jan 2024 00:00:00 GMT', age: '70', etag: '"a"' }
    assert.deepEqual(withValidationTimes(freshened, { etag: '"a"' }), { etag: '"a"' })
    assert.deepEqual(withValidationTimes(freshened, { date: 'new' }), { date: freshened.date, etag: '"a"' })
  })
  it("keeps the validating response's own Date and Age (any case)", () => {
    const freshened: Headers = { date: 'new', age: '5' }
    assert.equal(withValidationTimes(freshened, { Date: 'new', AGE: '5' }), freshened)
  })
})
