import type { StoredEntry } from '../stores/store.js'

const DONE: IteratorResult<Buffer> = { done: true, value: undefined }

/**
 * The stored entry as served, telling when its body has been read to its end or the read stopped (an
 * error, an abort, a range's early end): a 304 that makes the entry unstorable removes it only then,
 * as a body in a file or in chunk rows cannot be read once removed. The body is read as before:
 * a synchronous one stays synchronous (the body pump's turn budget applies), an asynchronous one
 * asynchronous.
 */
export class ServedBody {
  readonly entry: StoredEntry
  #reading = false
  #ended = false
  #pending: (() => void) | undefined

  constructor(stored: StoredEntry) {
    this.entry =
      stored.body === undefined ? { ...stored, readBody: () => this.#watch(stored.readBody()) } : stored
  }

  /** Runs `action` once the body was read or the read stopped; at once if no read was started. */
  afterRead(action: () => void): void {
    if (!this.#reading || this.#ended) action()
    else this.#pending = action
  }

  #watch(body: Iterable<Buffer> | AsyncIterable<Buffer>): Iterable<Buffer> | AsyncIterable<Buffer> {
    this.#reading = true
    return Symbol.asyncIterator in body
      ? this.#watchAsync(body[Symbol.asyncIterator]())
      : this.#watchSync(body[Symbol.iterator]())
  }

  #watchSync(source: Iterator<Buffer>): IterableIterator<Buffer> {
    const iterator: IterableIterator<Buffer> = {
      [Symbol.iterator]: () => iterator,
      next: () => {
        try {
          return this.#endAt(source.next())
        } catch (error) {
          this.#end()
          throw error
        }
      },
      return: () => {
        try {
          source.return?.()
        } finally {
          this.#end()
        }
        return DONE
      },
    }
    return iterator
  }

  #watchAsync(source: AsyncIterator<Buffer>): AsyncIterableIterator<Buffer> {
    const iterator: AsyncIterableIterator<Buffer> = {
      [Symbol.asyncIterator]: () => iterator,
      next: async () => {
        try {
          return this.#endAt(await source.next())
        } catch (error) {
          this.#end()
          throw error
        }
      },
      return: async () => {
        try {
          await source.return?.()
        } finally {
          this.#end()
        }
        return DONE
      },
    }
    return iterator
  }

  /** The step as read; the read ends with the body's last step. */
  #endAt(step: IteratorResult<Buffer>): IteratorResult<Buffer> {
    if (step.done) this.#end()
    return step
  }

  #end(): void {
    if (this.#ended) return
    this.#ended = true
    const pending = this.#pending
    this.#pending = undefined
    pending?.()
  }
}
