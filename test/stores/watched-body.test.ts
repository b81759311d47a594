import assert from 'node:assert/strict'
import { test } from 'node:test'
import { watchBody } from '../../lib/stores/watched-body.js'

const PIECES = [Buffer.from('ab'), Buffer.from('cd')]

function recorder() {
  const events: string[] = []
  return {
    events,
    watch: {
      started: () => events.push('started'),
      piece: (piece: Buffer) => events.push(`piece ${piece}`),
      ended: (whole: boolean) => events.push(`ended ${whole}`),
    },
  }
}

async function* slowly(pieces: Buffer[], failAt?: number) {
  for (const [index, piece] of pieces.entries()) {
    if (index === failAt) throw new Error('gone')
    yield piece
  }
}

test('a synchronous body stays synchronous and reports each piece, then its end once', () => {
  const { events, watch } = recorder()
  const body = watchBody(PIECES, watch)
  assert.ok(!(Symbol.asyncIterator in body))
  const read = [...(body as Iterable<Buffer>)].join('')
  assert.equal(read, 'abcd')
  assert.deepEqual(events, ['started', 'piece ab', 'piece cd', 'ended true'])
})

test('an asynchronous body stays asynchronous', async () => {
  const { events, watch } = recorder()
  const body = watchBody(slowly(PIECES), watch)
  assert.ok(Symbol.asyncIterator in body)
  let read = ''
  for await (const piece of body) read += piece
  assert.equal(read, 'abcd')
  assert.deepEqual(events, ['started', 'piece ab', 'piece cd', 'ended true'])
})

test('a read closed early or failed ends once, not whole; one never started reports nothing', async () => {
  const closed = recorder()
  for (const _piece of watchBody(PIECES, closed.watch) as Iterable<Buffer>) break
  assert.deepEqual(closed.events, ['started', 'piece ab', 'ended false'])

  const failed = recorder()
  const body = watchBody(slowly(PIECES, 1), failed.watch)
  await assert.rejects(async () => {
    for await (const _piece of body) {
    }
  }, /gone/)
  await body.return?.()
  assert.deepEqual(failed.events, ['started', 'piece ab', 'ended false'])

  const idle = recorder()
  watchBody(PIECES, idle.watch)
  assert.deepEqual(idle.events, [])
})
