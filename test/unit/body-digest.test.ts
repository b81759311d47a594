import assert from 'node:assert/strict'
import { test } from 'node:test'
import { crc32 } from 'node:zlib'
import fc from 'fast-check'
import { BodyDigest, continueCrc } from '../../lib/handlers/body-digest.js'

test('a body checked chunk by chunk has the CRC-32 of the whole, however it is cut', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 12 }), (pieces) => {
      const digest = new BodyDigest()
      for (const piece of pieces) digest.update(Buffer.from(piece))
      assert.equal(digest.crc, crc32(Buffer.concat(pieces)))
    }),
  )
})

test('an empty chunk with no memory behind it changes nothing (zlib answers 0 for one)', () => {
  const noMemory = Buffer.from(new ArrayBuffer(0))
  assert.equal(crc32(noMemory, 123), 0, 'what zlib does, which the digest must not follow')
  const digest = new BodyDigest()
  digest.update(Buffer.from('abc'))
  digest.update(noMemory)
  assert.equal(digest.crc, crc32(Buffer.from('abc')))
  assert.equal(continueCrc(123, noMemory), 123)
})
