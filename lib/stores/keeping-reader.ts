/** What a KeepingReader asks of the tier it may keep a body for. */
export interface Keeper {
  /** Whether this reader may keep what it reads (at most one reader keeps an entry's body). */
  claim(reader: KeepingReader): boolean
  /** This reader keeps nothing more (read whole, failed, stopped, or told to stop). */
  release(reader: KeepingReader): void
  /** The whole body, read by this reader while it kept. */
  kept(pieces: Buffer[]): void
}

/**
 * Reads a body piece by piece like its source and, when its keeper lets it (asked at the first
 * read, so a reader never started holds nothing), keeps the pieces until the body has been read
 * whole. A read that fails or stops early (a range, an aborted response), or `stopKeeping()`, drops
 * what was kept.
 */
export class KeepingReader implements AsyncIterableIterator<Buffer> {
  readonly #source: Iterator<Buffer> | AsyncIterator<Buffer>
  readonly #sizeBytes: number
  readonly #keeper: Keeper
  #started = false
  /** The pieces read so far while keeping; undefined when not keeping. */
  #pieces: Buffer[] | undefined
  #readBytes = 0

  constructor(source: Iterable<Buffer> | AsyncIterable<Buffer>, sizeBytes: number, keeper: Keeper) {
    this.#source = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]()
    this.#sizeBytes = sizeBytes
    this.#keeper = keeper
  }

  [Symbol.asyncIterator](): this {
    return this
  }

  async next(): Promise<IteratorResult<Buffer>> {
    if (!this.#started) {
      this.#started = true
      if (this.#keeper.claim(this)) this.#pieces = []
    }
    try {
      const step = await this.#source.next()
      if (step.done) this.#end()
      else if (this.#pieces) {
        this.#pieces.push(step.value)
        this.#readBytes += step.value.length
      }
      return step
    } catch (error) {
      this.stopKeeping()
      throw error
    }
  }

  async return(): Promise<IteratorResult<Buffer>> {
    this.stopKeeping()
    await this.#source.return?.()
    return { done: true, value: undefined }
  }

  /** Drops the pieces kept so far and keeps no more. */
  stopKeeping(): void {
    if (this.#pieces === undefined) return
    this.#pieces = undefined
    this.#keeper.release(this)
  }

  #end(): void {
    const pieces = this.#pieces
    this.stopKeeping()
    if (pieces && this.#readBytes === this.#sizeBytes) this.#keeper.kept(pieces)
  }
}
