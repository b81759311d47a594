import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setImmediate as turn } from 'node:timers/promises'
import fc from 'fast-check'
import { SharedLoad } from '../../lib/stores/shared-load.js'

/** A source that yields `pieces` one a turn of the event loop, then throws `failure` if given. */
async function* slowly(pieces: Buffer[], failure?: Error): AsyncGenerator<Buffer> {
  for (const piece of pieces) {
    await turn()
    yield piece
  }
  if (failure) throw failure
}

function loadOf(pieces: Buffer[], failure?: Error) {
  const told: string[] = []
  let kept: Buffer | undefined
  const sizeBytes = pieces.reduce((total, piece) => total + piece.length, 0)
  const load = new SharedLoad(sizeBytes, slowly(pieces, failure), {
    loaded: (body) => {
      kept = body
      told.push('loaded')
    },
    failed: () => told.push('failed'),
  })
  return { load, told, kept: () => kept }
}

async function readAll(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const pieces: Buffer[] = []
  for await (const piece of body) pieces.push(piece)
  return Buffer.concat(pieces)
}

test('followers that start at any point read the whole body, from one read of the source', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 32 }), { maxLength: 8 }),
      fc.array(fc.nat(10), { minLength: 1, maxLength: 4 }),
      async (arrays, delays) => {
        const pieces = arrays.map((piece) => Buffer.from(piece))
        const { load, told, kept } = loadOf(pieces)
        const reads = delays.map(async (delay) => {
          for (let i = 0; i < delay; i++) await turn()
          return readAll(load.follow())
        })
        for (const body of await Promise.all(reads)) assert.deepEqual(body, Buffer.concat(pieces))
        assert.deepEqual(told, ['loaded'])
        assert.deepEqual(kept(), Buffer.concat(pieces))
      },
    ),
    { numRuns: 50 },
  )
})

test('a follower that leaves early stops nothing: the load goes on and is kept', async () => {
  const pieces = [Buffer.from('one'), Buffer.from('two'), Buffer.from('three')]
  const { load, told, kept } = loadOf(pieces)
  const early = load.follow()
  assert.deepEqual((await early.next()).value, Buffer.from('one'))
  assert.deepEqual(await early.return?.(), { done: true, value: undefined })
  assert.deepEqual(await early.next(), { done: true, value: undefined })
  assert.deepEqual(await readAll(load.follow()), Buffer.from('onetwothree'))
  assert.deepEqual(told, ['loaded'])
  assert.deepEqual(kept(), Buffer.from('onetwothree'))
})

test('a failed read fails each follower after the bytes read before it, and keeps nothing', async () => {
  const failure = new Error('disk gone')
  const { load, told, kept } = loadOf([Buffer.from('abc'), Buffer.from('def')], failure)
  const followers = [load.follow(), load.follow()]
  for (const follower of followers) {
    const read: Buffer[] = []
    await assert.rejects(async () => {
      for await (const piece of follower) read.push(piece)
    }, failure)
    assert.deepEqual(Buffer.concat(read), Buffer.from('abcdef'))
  }
  assert.deepEqual(
    await readAll(load.follow()).catch((error: unknown) => error),
    failure,
    'a late follower too',
  )
  assert.deepEqual(told, ['failed'])
  assert.equal(kept(), undefined)
})

test('a source shorter or longer than the entry says fails the load: no unwritten bytes are kept', async () => {
  for (const [sizeBytes, message] of [
    [10, /shorter than its entry says/],
    [4, /longer than its entry says/],
  ] as const) {
    const told: string[] = []
    const load = new SharedLoad(sizeBytes, slowly([Buffer.from('abc'), Buffer.from('def')]), {
      loaded: () => told.push('loaded'),
      failed: () => told.push('failed'),
    })
    const read: Buffer[] = []
    await assert.rejects(async () => {
      for await (const piece of load.follow()) read.push(piece)
    }, message)
    assert.deepEqual(told, ['failed'])
    assert.ok(Buffer.concat(read).equals(Buffer.from('abcdef').subarray(0, Buffer.concat(read).length)))
  }
})
