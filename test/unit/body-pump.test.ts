import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Dispatcher } from 'undici'
import { BodyPump } from '../../lib/handlers/body-pump.js'
import { RelayController } from '../../lib/handlers/relay-controller.js'

type Body = Iterable<Buffer> | AsyncIterable<Buffer>
type OnData = (controller: Dispatcher.DispatchController, chunk: Buffer, index: number) => void

const KiB = 1024
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))
const done = (): IteratorResult<Buffer> => ({ done: true, value: undefined })
const chunk = (text: string): IteratorResult<Buffer> => ({ done: false, value: Buffer.from(text) })

/** Wires a pump as serve() does; the handler records every call it gets, in order. */
function setup(body: Body, onData?: OnData) {
  const events: string[] = []
  const errors: Error[] = []
  let index = 0
  const handler: Dispatcher.DispatchHandler = {
    onResponseData(controller, data) {
      events.push(data.length > 64 ? `${data[0]}x${data.length / KiB}K` : data.toString())
      onData?.(controller, data, index++)
    },
    onResponseEnd() {
      events.push('end')
    },
    onResponseError(_controller, error) {
      events.push(`error:${error.message}`)
      errors.push(error)
    },
  }
  const relay = new RelayController()
  const pump = new BodyPump(body, handler, relay)
  relay.setSource(pump)
  relay.start(handler, {})
  return { relay, pump, events, errors }
}

/** An async body whose every next() waits until the test settles it; counts calls in flight. */
function manualAsync(texts: string[]) {
  const state = { nexts: 0, pending: 0, maxPending: 0, returns: 0 }
  const settlers: (() => void)[] = []
  const iterator: AsyncIterator<Buffer> = {
    next() {
      const i = state.nexts++
      state.pending++
      state.maxPending = Math.max(state.maxPending, state.pending)
      return new Promise((resolve) => {
        settlers.push(() => {
          state.pending--
          const text = texts[i]
          resolve(text === undefined ? done() : chunk(text))
        })
      })
    },
    async return() {
      state.returns++
      return done()
    },
  }
  const settle = () => {
    const next = settlers.shift()
    assert.ok(next, 'no next() is pending')
    next()
  }
  return { body: { [Symbol.asyncIterator]: () => iterator }, state, settle }
}

test('a sync body is sent at most BYTES_PER_TURN per turn, then ends once', async () => {
  function* body() {
    for (const fill of [1, 2, 3]) yield Buffer.alloc(600 * KiB, fill)
  }
  const { pump, events } = setup(body())
  pump.run()
  assert.deepEqual(events, ['1x600K', '2x600K'])
  await turn()
  assert.deepEqual(events, ['1x600K', '2x600K', '3x600K', 'end'])
  await turn()
  assert.deepEqual(events, ['1x600K', '2x600K', '3x600K', 'end'])
})

test('pause() inside onResponseData holds the body until resume(), which continues on a microtask', async () => {
  const { relay, pump, events } = setup(
    ['a', 'b', 'c', 'd'].map((t) => Buffer.from(t)),
    (c, _d, i) => {
      if (i === 1) c.pause()
    },
  )
  pump.run()
  assert.deepEqual(events, ['a', 'b'])
  assert.equal(relay.paused, true)
  await turn()
  await turn()
  assert.deepEqual(events, ['a', 'b'])
  relay.resume()
  assert.deepEqual(events, ['a', 'b'], 'nothing is delivered inside resume()')
  await Promise.resolve()
  assert.deepEqual(events, ['a', 'b', 'c', 'd', 'end'])
})

test('pause() inside onResponseData of an async body asks for no further chunk', async () => {
  const { body, state, settle } = manualAsync(['a', 'b'])
  const { relay, pump, events } = setup(body, (c, _d, i) => {
    if (i === 0) c.pause()
  })
  pump.run()
  settle()
  await turn()
  assert.deepEqual(events, ['a'])
  assert.equal(state.nexts, 1)
  relay.resume()
  assert.equal(state.nexts, 1, 'resume() itself pulls nothing')
  await Promise.resolve()
  assert.equal(state.nexts, 2)
  settle()
  await turn()
  settle()
  await turn()
  assert.deepEqual(events, ['a', 'b', 'end'])
  assert.equal(state.nexts, 3)
})

test('a sync iterator that throws: the chunks before it, one error, no end, iterator closed', async () => {
  const boom = new Error('read failed')
  let nexts = 0
  let returns = 0
  const iterator: Iterator<Buffer> = {
    next() {
      if (++nexts === 3) throw boom
      return chunk(`c${nexts}`)
    },
    return() {
      returns++
      return done()
    },
  }
  const { pump, events, errors } = setup({ [Symbol.iterator]: () => iterator })
  pump.run()
  await turn()
  assert.deepEqual(events, ['c1', 'c2', 'error:read failed'])
  assert.equal(errors[0], boom)
  assert.equal(nexts, 3)
  assert.equal(returns, 1)
})

test('an async iterator whose next() rejects: one chunk, then that error, no end', async () => {
  const boom = new Error('disk gone')
  let nexts = 0
  let returns = 0
  const iterator: AsyncIterator<Buffer> = {
    next: () => (++nexts === 2 ? Promise.reject(boom) : Promise.resolve(chunk('a'))),
    async return() {
      returns++
      return done()
    },
  }
  const { pump, events, errors } = setup({ [Symbol.asyncIterator]: () => iterator })
  pump.run()
  await turn()
  await turn()
  assert.deepEqual(events, ['a', 'error:disk gone'])
  assert.equal(errors[0], boom)
  assert.deepEqual([nexts, returns], [2, 1])
})

test('onResponseData throwing on an async body: that error goes to onResponseError, the body is closed', async () => {
  const thrown = new Error('caller broke')
  const { body, state, settle } = manualAsync(['a', 'b', 'c'])
  const { pump, events, errors } = setup(body, (_c, _d, i) => {
    if (i === 1) throw thrown
  })
  pump.run()
  settle()
  await turn()
  settle()
  await turn()
  await turn()
  assert.deepEqual(events, ['a', 'b', 'error:caller broke'])
  assert.equal(errors[0], thrown)
  assert.equal(state.nexts, 2, 'no next() after the failure')
  assert.equal(state.returns, 1)
})

test('pause and resume while a next() is pending: never two next() in flight, each chunk once', async () => {
  const { body, state, settle } = manualAsync(['a', 'b', 'c'])
  const { relay, pump, events } = setup(body)
  pump.run()
  for (let i = 0; i < 4; i++) {
    assert.equal(state.nexts, i + 1)
    relay.pause()
    relay.resume()
    await Promise.resolve()
    await turn()
    assert.equal(state.nexts, i + 1, 'resume() during a pending next() pulls nothing')
    settle()
    await turn()
  }
  assert.deepEqual(events, ['a', 'b', 'c', 'end'])
  assert.deepEqual([state.nexts, state.maxPending, state.pending, state.returns], [4, 1, 0, 0])
})

test('abort() survives a return() that throws or rejects, and the caller gets exactly one error', async () => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  try {
    // sync iterator, return() throws
    let returns = 0
    const iterator: Iterator<Buffer> = {
      next: () => chunk('a'),
      return() {
        returns++
        throw new Error('already closed')
      },
    }
    const sync = setup({ [Symbol.iterator]: () => iterator }, (c) => c.pause())
    sync.pump.run()
    const reason = new Error('x')
    assert.doesNotThrow(() => sync.relay.abort(reason))
    assert.doesNotThrow(() => sync.pump.abort(new Error('again')))
    await turn()
    assert.deepEqual(sync.events, ['a', 'error:x'])
    assert.equal(sync.errors[0], reason)
    assert.equal(returns, 1)

    // async iterator, return() rejects, aborted while a next() is pending
    let rejected = 0
    let settle = (_step: IteratorResult<Buffer>) => {}
    const step = new Promise<IteratorResult<Buffer>>((resolve) => {
      settle = resolve
    })
    const asyncIterator: AsyncIterator<Buffer> = {
      next: () => step,
      return() {
        rejected++
        return Promise.reject(new Error('close failed'))
      },
    }
    const as = setup({ [Symbol.asyncIterator]: () => asyncIterator })
    as.pump.run()
    assert.doesNotThrow(() => as.relay.abort(new Error('x')))
    settle(chunk('late'))
    await turn()
    await turn()
    assert.deepEqual(as.events, ['error:x'], 'no data after the abort')
    assert.equal(rejected, 1)
    assert.deepEqual(unhandled, [])
  } finally {
    process.off('unhandledRejection', onUnhandled)
  }
})

test('abort() after the body has ended or failed reports nothing more', async () => {
  let returns = 0
  const texts = ['a']
  const iterator: Iterator<Buffer> = {
    next: () => {
      const text = texts.shift()
      return text === undefined ? done() : chunk(text)
    },
    return() {
      returns++
      return done()
    },
  }
  const ended = setup({ [Symbol.iterator]: () => iterator })
  ended.pump.run()
  assert.deepEqual(ended.events, ['a', 'end'])
  ended.relay.abort(new Error('late'))
  ended.pump.abort(new Error('later'))
  await turn()
  assert.deepEqual(ended.events, ['a', 'end'])
  assert.equal(returns, 0)

  const failed = setup({
    [Symbol.iterator]: () => ({
      next(): IteratorResult<Buffer> {
        throw new Error('bad')
      },
    }),
  })
  failed.pump.run()
  await turn()
  failed.relay.abort(new Error('late'))
  await turn()
  assert.deepEqual(failed.events, ['error:bad'])

  // a failure is handed on a turn later: an abort before that is what the caller hears, once
  const aborted = setup({
    [Symbol.iterator]: () => ({
      next(): IteratorResult<Buffer> {
        throw new Error('bad')
      },
    }),
  })
  aborted.pump.run()
  aborted.relay.abort(new Error('first'))
  await turn()
  await turn()
  assert.deepEqual(aborted.events, ['error:first'])
})

test('a pause and resume while the next turn is already scheduled do not double the turn budget', async () => {
  function* body() {
    for (let i = 0; i < 20; i++) yield Buffer.alloc(600 * KiB, i)
  }
  const perTurnBytes = [0]
  const { pump } = setup(body(), (controller, data, index) => {
    perTurnBytes[perTurnBytes.length - 1] = (perTurnBytes.at(-1) ?? 0) + data.length
    if (index === 1) {
      controller.pause()
      queueMicrotask(() => controller.resume())
    }
  })
  pump.run()
  for (let turns = 0; turns < 10; turns++) {
    await turn()
    perTurnBytes.push(0)
  }
  assert.deepEqual(
    perTurnBytes.slice(0, 10).map((bytes) => bytes / (600 * KiB)),
    // The first count also holds the run() before the first turn; before the fix it read 6, 4, 4, 4.
    [4, 2, 2, 2, 2, 2, 2, 2, 2, 0],
    'two 600 KiB chunks (the second passes 1 MiB) a turn',
  )
})

test('a chunk read while the caller paused waits for resume()', async () => {
  const { body, settle } = manualAsync(['a', 'b'])
  const { relay, pump, events } = setup(body)
  pump.run()
  relay.pause()
  settle()
  await turn()
  assert.deepEqual(events, [], 'nothing delivered while paused')
  relay.resume()
  await Promise.resolve()
  assert.deepEqual(events, ['a'])
  settle()
  await turn()
  settle()
  await turn()
  assert.deepEqual(events, ['a', 'b', 'end'])
})

test('a big chunk that pauses the caller ends as soon as it resumes, not a turn later', async () => {
  let resume: (() => void) | undefined
  const { pump, events } = setup([Buffer.alloc(4096 * KiB, 4)], (controller) => {
    controller.pause()
    resume = () => controller.resume()
  })
  pump.run()
  assert.deepEqual(events, ['4x4096K'])
  resume?.()
  await Promise.resolve()
  assert.deepEqual(events, ['4x4096K', 'end'], 'within a microtask of resume()')
})

test('a caller that pauses on the chunk that spends the budget gets nothing more until it resumes', async () => {
  let resume: (() => void) | undefined
  const chunks = [1, 2, 3].map((fill) => Buffer.alloc(1024 * KiB, fill))
  const { pump, events } = setup(chunks, (controller) => {
    controller.pause()
    resume = () => controller.resume()
  })
  pump.run()
  await turn()
  await turn()
  assert.deepEqual(events, ['1x1024K'])
  resume?.()
  await turn()
  assert.deepEqual(events, ['1x1024K', '2x1024K'])
})

test('with a chunk looked for ahead, a turn still sends 1 MiB, not 2', async () => {
  const chunks = Array.from({ length: 6 }, (_, index) => Buffer.alloc(1024 * KiB, index))
  const { pump, events } = setup(chunks)
  pump.run()
  const perTurn = [events.length]
  for (let turns = 0; turns < 6; turns++) {
    await turn()
    perTurn.push(events.length - perTurn.reduce((total, count) => total + count, 0))
  }
  assert.deepEqual(perTurn, [1, 1, 1, 1, 1, 2, 0], 'one chunk a turn; the sixth and the end together')
})

test('a caller that aborts on the chunk that spends the budget: nothing is read after the body is closed', async () => {
  const log: string[] = []
  let closed = false
  let index = 0
  const iterator: Iterator<Buffer> = {
    next() {
      log.push(closed ? 'next after return' : 'next')
      return index++ < 4 ? { done: false, value: Buffer.alloc(1024 * KiB) } : { done: true, value: undefined }
    },
    return() {
      closed = true
      log.push('return')
      return { done: true, value: undefined }
    },
  }
  const { pump, events } = setup({ [Symbol.iterator]: () => iterator }, (controller) =>
    controller.abort(new Error('caller gone')),
  )
  pump.run()
  await turn()
  assert.deepEqual(log, ['next', 'return'])
  assert.deepEqual(events, ['0x1024K', 'error:caller gone'])
})
