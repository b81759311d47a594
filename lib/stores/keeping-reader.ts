/** What a KeepingReader asks of the tier it may keep a body for. */
export interface Keeper {
  /** Whether this reader may keep what it reads (at most one reader keeps an entry's body). */
  claim(reader: KeepingReader): boolean
  /** This reader keeps nothing more (read whole, failed, stopped, or told to stop). */
  release(reader: KeepingReader): void
  /** The whole body, copied by this reader as it read it. */
  kept(body: Buffer): void
}

/**
 * Reads a body piece by piece like its source and, when its keeper lets it (asked at the first read,
 * so a reader never started holds nothing), copies each piece into one buffer of `sizeBytes` before
 * handing it on: what is kept is what was read, whatever the caller then does with its pieces. A read
 * that fails, stops early (a range, an aborted response) or is longer than `sizeBytes`, or
 * `stopKeeping()`, drops the copy.
 */
export class KeepingReader implements AsyncIterableIterator<Buffer> {
  readonly #source: Iterator<Buffer> | AsyncIterator<Buffer>
  readonly #sizeBytes: number
  readonly #keeper: Keeper
  #started = false
  /** The copy being made; undefined when not keeping. */
  #copy: Buffer | undefined
  #copiedBytes = 0

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
      if (this.#keeper.claim(this)) this.#copy = Buffer.allocUnsafeSlow(this.#sizeBytes)
    }
    try {
      const step = await this.#source.next()
      if (step.done) this.#end()
      else this.#keep(step.value)
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

  /** Drops the copy made so far and keeps no more. */
  stopKeeping(): void {
    if (this.#copy === undefined) return
    this.#copy = undefined
    this.#keeper.release(this)
  }

  #keep(piece: Buffer): void {
    if (this.#copy === undefined) return
    if (this.#copiedBytes + piece.length > this.#sizeBytes) {
      this.stopKeeping()
      return
    }
    this.#copy.set(piece, this.#copiedBytes)
    this.#copiedBytes += piece.length
  }

  #end(): void {
    const copy = this.#copy
    this.stopKeeping()
    if (copy && this.#copiedBytes === this.#sizeBytes) this.#keeper.kept(copy)
  }
}
