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

/** A follower's own reader of the body: counts the pieces asked of it, and whether it was closed. */
function ownReader(pieces: Buffer[]) {
  const source = slowly(pieces)
  const own = { steps: 0, closed: false, body: {} as AsyncIterable<Buffer> }
  own.body = {
    [Symbol.asyncIterator]: () => ({
      next: () => {
        own.steps++
        return source.next()
      },
      return: () => {
        own.closed = true
        return source.return(undefined)
      },
    }),
  }
  return own
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

test('followers that start at any point read the whole body from one read; their own readers are closed unread', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 32 }), { maxLength: 8 }),
      fc.array(fc.nat(10), { minLength: 1, maxLength: 4 }),
      async (arrays, delays) => {
        const pieces = arrays.map((piece) => Buffer.from(piece))
        const { load, told, kept } = loadOf(pieces)
        const followers = delays.map(async (delay) => {
          const own = ownReader(pieces)
          for (let i = 0; i < delay; i++) await turn()
          return { own, body: await readAll(load.follow(own.body)) }
        })
        for (const { own, body } of await Promise.all(followers)) {
          assert.deepEqual(body, Buffer.concat(pieces))
          assert.deepEqual([own.steps, own.closed], [0, true])
        }
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
  const early = load.follow(ownReader(pieces).body)
  assert.deepEqual((await early.next()).value, Buffer.from('one'))
  assert.deepEqual(await early.return?.(), { done: true, value: undefined })
  assert.deepEqual(await early.next(), { done: true, value: undefined })
  assert.deepEqual(await readAll(load.follow(ownReader(pieces).body)), Buffer.from('onetwothree'))
  assert.deepEqual(told, ['loaded'])
  assert.deepEqual(kept(), Buffer.from('onetwothree'))
})

test('when the tier stops keeping, the load stops and each follower reads the rest from its own reader', async () => {
  const pieces = [Buffer.from('one'), Buffer.from('two'), Buffer.from('three')]
  const { load, told } = loadOf(pieces)
  const own = ownReader(pieces)
  const follower = load.follow(own.body)
  assert.deepEqual((await follower.next()).value, Buffer.from('one'))
  load.stopKeeping()
  assert.deepEqual(await readAll(follower), Buffer.from('twothree'))
  assert.equal(own.steps, 4, 'its own reader read from the start, the first piece dropped')
  assert.deepEqual(
    await readAll(load.follow(ownReader(pieces).body)),
    Buffer.from('onetwothree'),
    'a later one',
  )
  await turn()
  assert.deepEqual(told, [], 'nothing kept')
})

test('once loaded, the body is dropped when the tier lets it go: a follower still reading goes on with its own reader', async () => {
  const pieces = [Buffer.from('one'), Buffer.from('two')]
  const { load, kept } = loadOf(pieces)
  const own = ownReader(pieces)
  const slow = load.follow(own.body)
  assert.deepEqual(await readAll(load.follow(ownReader(pieces).body)), Buffer.from('onetwo'))
  assert.deepEqual([load.body, kept()], [Buffer.from('onetwo'), Buffer.from('onetwo')])
  load.stopKeeping()
  assert.equal(load.body, undefined)
  assert.deepEqual(await readAll(slow), Buffer.from('onetwo'))
  assert.equal(own.steps, 3)
})

test('a failed read: each follower goes on with its own reader, and nothing is kept', async () => {
  const pieces = [Buffer.from('abc'), Buffer.from('def')]
  const { load, told, kept } = loadOf(pieces, new Error('disk gone'))
  const owns = [ownReader(pieces), ownReader(pieces)]
  const bodies = await Promise.all(owns.map((own) => readAll(load.follow(own.body))))
  for (const body of bodies) assert.deepEqual(body, Buffer.from('abcdef'))
  for (const own of owns) assert.ok(own.steps > 0)
  assert.deepEqual(await readAll(load.follow(ownReader(pieces).body)), Buffer.from('abcdef'), 'a later one')
  assert.deepEqual(told, ['failed'])
  assert.equal(kept(), undefined)
})

test('a source shorter or longer than the entry says fails the load: nothing kept, no byte unread handed on', async () => {
  for (const sizeBytes of [10, 4]) {
    const told: string[] = []
    const pieces = [Buffer.from('abc'), Buffer.from('def')]
    const load = new SharedLoad(sizeBytes, slowly(pieces), {
      loaded: () => told.push('loaded'),
      failed: () => told.push('failed'),
    })
    const own = ownReader(pieces)
    assert.deepEqual(
      await readAll(load.follow(own.body)),
      Buffer.from('abcdef'),
      'as its own reader reads it',
    )
    assert.deepEqual(told, ['failed'])
  }
})
