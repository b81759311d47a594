/** What a SharedLoad tells the tier it loads a body for. */
export interface LoadEnd {
  /** The whole body, read once. */
  loaded(body: Buffer): void
  /** The read failed; its followers are told, and a later hit may load again. */
  failed(): void
}

const DONE: IteratorResult<Buffer> = { done: true, value: undefined }

/**
 * One read of a stored body (a body file) into one buffer, which every hit of the entry meanwhile
 * follows as it fills: 64 hits on a cold 4 MiB entry read its file once, not 64 times. It starts at
 * once and goes at the file's pace, not its followers' (so nothing holds the file open once it is
 * read): the buffer is the room the hot tier counts for the entry anyway, and the body is kept even
 * when every follower left early. A piece handed on is a view of that buffer, never written again.
 */
export class SharedLoad {
  readonly #body: Buffer
  readonly #source: AsyncIterable<Buffer>
  readonly #end: LoadEnd
  #filledBytes = 0
  #state: 'loading' | 'loaded' | 'failed' = 'loading'
  #error: unknown
  #filled: Promise<void> | undefined
  #wake: (() => void) | undefined

  constructor(sizeBytes: number, source: AsyncIterable<Buffer>, end: LoadEnd) {
    this.#body = Buffer.allocUnsafeSlow(sizeBytes)
    this.#source = source
    this.#end = end
    void this.#load()
  }

  /** A read of the body from its start: what is loaded so far, then each piece as it comes. */
  follow(): AsyncIterableIterator<Buffer> {
    let offsetBytes = 0
    let left = false
    const iterator: AsyncIterableIterator<Buffer> = {
      [Symbol.asyncIterator]: () => iterator,
      next: async () => {
        while (!left) {
          if (offsetBytes < this.#filledBytes) {
            const piece = this.#body.subarray(offsetBytes, this.#filledBytes)
            offsetBytes = this.#filledBytes
            return { done: false, value: piece }
          }
          if (this.#state === 'failed') {
            left = true
            throw this.#error
          }
          if (this.#state === 'loaded') break
          await this.#moreFilled()
        }
        left = true
        return DONE
      },
      return: async () => {
        left = true
        return DONE
      },
    }
    return iterator
  }

  async #load(): Promise<void> {
    try {
      for await (const piece of this.#source) {
        if (piece.length > this.#body.length - this.#filledBytes) {
          throw new Error('undici-cache: a stored body is longer than its entry says')
        }
        this.#body.set(piece, this.#filledBytes)
        this.#filledBytes += piece.length
        this.#wakeFollowers()
      }
      if (this.#filledBytes < this.#body.length) {
        throw new Error('undici-cache: a stored body is shorter than its entry says')
      }
      this.#state = 'loaded'
      this.#end.loaded(this.#body)
    } catch (error) {
      this.#state = 'failed'
      this.#error = error
      this.#end.failed()
    }
    this.#wakeFollowers()
  }

  #moreFilled(): Promise<void> {
    this.#filled ??= new Promise((resolve) => {
      this.#wake = resolve
    })
    return this.#filled
  }

  #wakeFollowers(): void {
    const wake = this.#wake
    this.#filled = undefined
    this.#wake = undefined
    wake?.()
  }
}
