/** What a watched read of a stored body reports. */
export interface BodyWatch {
  /** The first piece is asked for. */
  started?(): void
  /** A piece, before it is handed on. */
  piece?(piece: Buffer): void
  /** Called once: the body was read to its end (`whole`), or the read failed or stopped early. */
  ended(whole: boolean): void
}

export type WatchedBody = IterableIterator<Buffer> | AsyncIterableIterator<Buffer>

const DONE: IteratorResult<Buffer> = { done: true, value: undefined }

/**
 * `body` read exactly as before, reporting to `watch` as it goes: a synchronous body stays
 * synchronous (so a reader's turn budget still applies), an asynchronous one asynchronous.
 */
export function watchBody(body: Iterable<Buffer> | AsyncIterable<Buffer>, watch: BodyWatch): WatchedBody {
  const read = new WatchedRead(watch)
  return Symbol.asyncIterator in body
    ? watchAsync(body[Symbol.asyncIterator](), read)
    : watchSync(body[Symbol.iterator](), read)
}

/** Reports a read's start and end once each, whichever way it goes. */
class WatchedRead {
  readonly #watch: BodyWatch
  #started = false
  #ended = false

  constructor(watch: BodyWatch) {
    this.#watch = watch
  }

  start(): void {
    if (this.#started) return
    this.#started = true
    this.#watch.started?.()
  }

  step(step: IteratorResult<Buffer>): IteratorResult<Buffer> {
    if (step.done) this.end(true)
    else if (!this.#ended) this.#watch.piece?.(step.value)
    return step
  }

  end(whole: boolean): void {
    if (this.#ended) return
    this.#ended = true
    this.#watch.ended(whole)
  }
}

function watchSync(source: Iterator<Buffer>, read: WatchedRead): IterableIterator<Buffer> {
  const iterator: IterableIterator<Buffer> = {
    [Symbol.iterator]: () => iterator,
    next: () => {
      read.start()
      try {
        return read.step(source.next())
      } catch (error) {
        read.end(false)
        throw error
      }
    },
    return: () => {
      try {
        source.return?.()
      } finally {
        read.end(false)
      }
      return DONE
    },
  }
  return iterator
}

function watchAsync(source: AsyncIterator<Buffer>, read: WatchedRead): AsyncIterableIterator<Buffer> {
  const iterator: AsyncIterableIterator<Buffer> = {
    [Symbol.asyncIterator]: () => iterator,
    next: async () => {
      read.start()
      try {
        return read.step(await source.next())
      } catch (error) {
        read.end(false)
        throw error
      }
    },
    return: async () => {
      try {
        await source.return?.()
      } finally {
        read.end(false)
      }
      return DONE
    },
  }
  return iterator
}
