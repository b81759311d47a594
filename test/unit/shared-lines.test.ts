import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { rawLines } from '../../lib/handlers/shared-lines.js'

const latin1 = (lines: Buffer[]) => lines.map((line) => line.toString('latin1'))

test('rawLines gives one name and one value Buffer per field line, in latin1, skipping undefined', () => {
  const lines = rawLines({ 'x-word': 'café', 'set-cookie': ['a=1', 'b=2'], gone: undefined, empty: '' })
  assert.ok(lines.every((line) => Buffer.isBuffer(line)))
  assert.deepEqual(latin1(lines), ['x-word', 'café', 'set-cookie', 'a=1', 'set-cookie', 'b=2', 'empty', ''])
  assert.equal(lines[1]?.toString('hex'), '636166e9', 'é is the one byte 0xE9')
  assert.deepEqual(rawLines({}), [])
})

test('a repeated name or short value is the same Buffer; a long one is encoded for its response alone', () => {
  const long = 'v'.repeat(257)
  const first = rawLines({ etag: '"e1"', 'x-long': long })
  const again = rawLines({ etag: '"e1"', 'x-long': long })
  assert.equal(again[0], first[0])
  assert.equal(again[1], first[1])
  assert.notEqual(again[3], first[3])
  assert.equal(again[3]?.toString('latin1'), long)
})

test('a line latin1 cannot hold is encoded as Buffer.from does, and not kept', () => {
  const first = rawLines({ 'x-name': 'Āb' })
  const again = rawLines({ 'x-name': 'Āb' })
  assert.deepEqual(first[1], Buffer.from('Āb', 'latin1'))
  assert.notEqual(again[1], first[1])
  assert.equal(again[0], first[0])
})

test('lines handed out keep their bytes after the table starts over on a new slab', () => {
  const kept = rawLines({ 'x-kept': 'first value' })
  const filler = Array.from({ length: 3000 }, (_, index) => `${index}`.padEnd(200, '.'))
  const encoded = filler.map((value) => rawLines({ 'x-fill': value }))
  assert.deepEqual(latin1(kept), ['x-kept', 'first value'])
  assert.deepEqual(
    encoded.map(latin1),
    filler.map((value) => ['x-fill', value]),
  )
  const after = rawLines({ 'x-kept': 'first value' })
  assert.notEqual(after[1], kept[1], 'the table started over')
  assert.deepEqual(latin1(after), ['x-kept', 'first value'])
})

test('rawLines round-trips any latin1 fields, across slab boundaries', () => {
  const text = fc.string({
    unit: fc.integer({ min: 0, max: 255 }).map((code) => String.fromCharCode(code)),
    maxLength: 300,
  })
  const field = fc.oneof(text, fc.array(text, { minLength: 1, maxLength: 3 }))
  fc.assert(
    fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }), field), (headers) => {
      const expected = Object.entries(headers).flatMap(([name, value]) =>
        (Array.isArray(value) ? value : [value]).flatMap((line) => [name, line]),
      )
      assert.deepEqual(latin1(rawLines(headers)), expected)
    }),
    { numRuns: 2000 },
  )
})
