/** RedisLookups: which deletion mark a RedisStore checks a write against (RFC 9111 §4.4). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RedisLookups } from '../../lib/stores/redis-lookups.js'

test("a write is checked against its own request's lookup, however many lookups saw the same mark since", () => {
  const lookups = new RedisLookups()
  lookups.looked('k', '', 100)
  lookups.looked('k', '7', 200)
  // a hot key: a thousand lookups after the delete
  for (let atMs = 201; atMs < 1201; atMs++) lookups.looked('k', '7', atMs)
  assert.equal(lookups.deletionsSeen('k', 100), '', 'sent before the delete: refused once the mark moved on')
  assert.equal(lookups.deletionsSeen('k', 150), '7')
  assert.equal(lookups.deletionsSeen('k', 1200), '7', 'sent after the delete')
})

test('a request with no lookup of its own is checked against the last lookup before it', () => {
  const lookups = new RedisLookups()
  lookups.looked('k', '7', 100)
  assert.equal(lookups.deletionsSeen('k', 150), '7')
  assert.equal(lookups.deletionsSeen('never', 150), '-', 'a key never looked up is not checked')
})

test('past 8 marks of a key, a request sent before the ninth-last is refused', () => {
  const lookups = new RedisLookups()
  for (let mark = 0; mark < 9; mark++) lookups.looked('k', String(mark), 100 + mark)
  assert.equal(lookups.deletionsSeen('k', 100), '!')
  assert.equal(lookups.deletionsSeen('k', 101), '1')
  assert.equal(lookups.deletionsSeen('k', 108), '8')
})

test('a key forgotten beyond 10 000 refuses the writes of requests sent before its last lookup', () => {
  const lookups = new RedisLookups()
  lookups.looked('k', '', 100)
  for (let other = 0; other < 10_000; other++) lookups.looked(`other-${other}`, '', 200)
  assert.equal(lookups.deletionsSeen('k', 100), '!')
  assert.equal(lookups.deletionsSeen('k', 101), '-', 'sent after every forgotten lookup: never looked up')
  assert.equal(lookups.deletionsSeen('other-0', 200), '')
})
