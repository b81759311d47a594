import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type Keeper, KeepingReader } from '../../lib/stores/keeping-reader.js'

const PIECES = [Buffer.from('ab'), Buffer.from('cde'), Buffer.from('f')]

/** A keeper that records what it was asked and told. */
function recordingKeeper(allow = true) {
  const calls: string[] = []
  const kept: Buffer[] = []
  const keeper: Keeper = {
    claim: () => {
      calls.push('claim')
      return allow
    },
    release: () => calls.push('release'),
    kept: (body) => {
      calls.push('kept')
      kept.push(body)
    },
  }
  return { keeper, calls, kept }
}

async function readAll(iterable: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<string> {
  let text = ''
  for await (const piece of iterable) text += piece.toString()
  return text
}

test('a body read whole is handed to the keeper once, as a copy made before each piece went on', async () => {
  const { keeper, calls, kept } = recordingKeeper()
  const pieces = PIECES.map((piece) => Buffer.from(piece))
  let text = ''
  for await (const piece of new KeepingReader(6, keeper).read(pieces)) {
    text += piece.toString()
    piece.fill('x')
  }
  assert.equal(text, 'abcdef')
  assert.deepEqual(calls, ['claim', 'release', 'kept'])
  assert.deepEqual(kept, [Buffer.from('abcdef')], 'what was read, not what the caller made of it')
})

test('a reader the keeper refuses reads the same bytes and keeps nothing', async () => {
  const { keeper, calls } = recordingKeeper(false)
  assert.equal(await readAll(new KeepingReader(6, keeper).read(PIECES)), 'abcdef')
  assert.deepEqual(calls, ['claim'])
})

test('a reader never started claims nothing; one closed before its first read neither', async () => {
  const { keeper, calls } = recordingKeeper()
  new KeepingReader(6, keeper).read(PIECES)
  await new KeepingReader(6, keeper).read(PIECES).return?.()
  assert.deepEqual(calls, [])
})

test('a read stopped early, cut short, too long, failed or told to stop keeps nothing', async () => {
  const early = recordingKeeper()
  const reader = new KeepingReader(6, early.keeper).read(PIECES)
  await reader.next()
  await reader.return?.()
  assert.deepEqual(early.calls, ['claim', 'release'])

  const short = recordingKeeper()
  assert.equal(await readAll(new KeepingReader(7, short.keeper).read(PIECES)), 'abcdef')
  assert.deepEqual(short.calls, ['claim', 'release'])

  const long = recordingKeeper()
  assert.equal(await readAll(new KeepingReader(5, long.keeper).read(PIECES)), 'abcdef')
  assert.deepEqual(long.calls, ['claim', 'release'])

  const failing = recordingKeeper()
  async function* broken() {
    yield Buffer.from('ab')
    throw new Error('gone')
  }
  await assert.rejects(readAll(new KeepingReader(6, failing.keeper).read(broken())), /gone/)
  assert.deepEqual(failing.calls, ['claim', 'release'])

  const stopped = recordingKeeper()
  const keeping = new KeepingReader(6, stopped.keeper)
  const told = keeping.read(PIECES)
  await told.next()
  keeping.stopKeeping()
  keeping.stopKeeping()
  assert.equal(await readAll(told), 'cdef', 'the read itself goes on')
  assert.deepEqual(stopped.calls, ['claim', 'release'])
})
