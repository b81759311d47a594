import type { Dispatcher } from 'undici'
import { asError } from '../diagnostics.js'
import { isPromise } from '../stores/store.js'
import type { RelayController, ResponseSource } from './relay-controller.js'
import { tellError } from './tell-error.js'

/** Bytes delivered in one turn of the event loop before yielding to other work. */
const BYTES_PER_TURN = 1024 * 1024

type Step = IteratorResult<Buffer>

function iteratorOf(
  body: Iterable<Buffer> | AsyncIterable<Buffer>,
): Iterator<Buffer> | AsyncIterator<Buffer> {
  return Symbol.asyncIterator in body ? body[Symbol.asyncIterator]() : body[Symbol.iterator]()
}

/**
 * Streams a stored body to a handler, pulling one chunk at a time while the caller is not
 * paused: memory stays bounded by one chunk, whatever the body size.
 */
export class BodyPump implements ResponseSource {
  readonly #iterator: Iterator<Buffer> | AsyncIterator<Buffer>
  readonly #handler: Dispatcher.DispatchHandler
  readonly #controller: RelayController
  /** Handed on with the end: the origin's trailers, for a body that came from one. */
  readonly #trailers: Record<string, string>
  #paused = false
  #running = false
  /** A step of an asynchronous body is on its way: nothing may ask the iterator for another. */
  #waiting = false
  /** A step read while the caller paused, or looked for when a turn's budget was spent; delivered first. */
  #held: Step | undefined
  /** `#held` was read by #yieldTurn (so the iterator is synchronous and the held bytes count toward a turn). */
  #heldPeeked = false
  #scheduled = false
  #finished = false

  constructor(
    body: Iterable<Buffer> | AsyncIterable<Buffer>,
    handler: Dispatcher.DispatchHandler,
    controller: RelayController,
    trailers: Record<string, string> = {},
  ) {
    this.#iterator = iteratorOf(body)
    this.#handler = handler
    this.#controller = controller
    this.#trailers = trailers
  }

  pause(): void {
    this.#paused = true
  }

  resume(): void {
    if (!this.#paused) return
    this.#paused = false
    this.#runLater(queueMicrotask)
  }

  abort(reason: Error): void {
    if (this.#finished) return
    this.#finished = true
    this.#closeIterator()
    queueMicrotask(() => tellError(this.#handler, this.#controller, reason))
  }

  /** Delivers chunks until paused, finished, or a turn's byte budget is spent. */
  run(): void {
    if (this.#running || this.#waiting || this.#finished || this.#paused) return
    this.#running = true
    let bytes = 0
    try {
      const held = this.#held
      const peeked = this.#heldPeeked
      this.#held = undefined
      this.#heldPeeked = false
      if (held && !this.#deliver(held)) return
      bytes += held?.done === false ? held.value.length : 0
      if (peeked && bytes >= BYTES_PER_TURN) {
        this.#yieldTurn()
        return
      }
      while (!this.#paused && !this.#finished) {
        const step = this.#iterator.next()
        if (isPromise(step)) {
          this.#waiting = true
          step.then(
            (result) => this.#continueAfter(result),
            (error: unknown) => this.#fail(error),
          )
          return
        }
        if (!this.#deliver(step)) return
        bytes += step.done ? 0 : step.value.length
        if (bytes >= BYTES_PER_TURN) {
          this.#yieldTurn()
          return
        }
      }
    } catch (error) {
      this.#fail(error)
    } finally {
      this.#running = false
    }
  }

  /**
   * The turn's budget is spent: the rest waits for the next turn, but the end of the body (which
   * costs no bytes) is looked for now, so it does not wait a turn (nor, when paused, for that turn
   * after resume()). The iterator is synchronous here: an asynchronous one never reaches the budget.
   */
  #yieldTurn(): void {
    if (this.#finished) return
    const next = this.#iterator.next() as Step
    if (next.done && !this.#paused) {
      this.#deliver(next)
      return
    }
    this.#held = next
    this.#heldPeeked = true
    if (!next.done) this.#runLater(setImmediate)
  }

  /** Schedules one more run, unless one is scheduled already (a turn's budget is not doubled). */
  #runLater(schedule: (callback: () => void) => unknown): void {
    if (this.#scheduled) return
    this.#scheduled = true
    schedule(() => {
      this.#scheduled = false
      this.run()
    })
  }

  #continueAfter(step: Step): void {
    this.#waiting = false
    if (this.#paused) {
      // Paused while the step was read: it waits for resume().
      this.#held = step
      return
    }
    try {
      if (this.#deliver(step)) this.run()
    } catch (error) {
      this.#fail(error)
    }
  }

  /** Hands one step to the caller; false once the body has ended. */
  #deliver(step: Step): boolean {
    if (this.#finished) return false
    if (step.done) {
      this.#finished = true
      this.#handler.onResponseEnd?.(this.#controller, this.#trailers)
      return false
    }
    this.#handler.onResponseData?.(this.#controller, step.value)
    return true
  }

  /**
   * The read failed: the error reaches the caller on a later turn. undici's fetch() loses an error
   * that comes in the turn its response started (the body then never ends), as a synchronous store's
   * read that fails early in the body would give it. A caller that aborts meanwhile gets its abort.
   */
  #fail(error: unknown): void {
    if (this.#finished) return
    this.#finished = true
    this.#closeIterator()
    setImmediate(() =>
      tellError(this.#handler, this.#controller, this.#controller.abortError ?? asError(error)),
    )
  }

  #closeIterator(): void {
    try {
      const closing = this.#iterator.return?.()
      if (isPromise(closing)) closing.catch(() => {})
    } catch {
      // The store's reader is already closed.
    }
  }
}
