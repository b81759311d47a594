/** What a SharedLoad tells the tier it loads a body for. */
export interface LoadEnd {
  /** The whole body, read once, in one buffer. */
  loaded(body: Buffer): void
  /** The read failed: its followers go on with their own readers, and a later hit may load again. */
  failed(): void
}

const DONE: IteratorResult<Buffer> = { done: true, value: undefined }

/**
 * One read of a stored body (a body file), which every hit of the entry meanwhile follows: 64 hits on
 * a cold 4 MiB entry read its file once, not 64 times. It starts at once and goes at the file's pace,
 * not its followers', keeping the pieces read (the room the hot tier counts for the entry), and hands
 * the tier the body in one buffer at its end, even when every follower left early. When the tier stops
 * keeping the entry (meanwhile or later), or the read fails, it drops its pieces and body: each follower
 * still reading reads the rest from its own reader, opened with it (so a file removed meanwhile can
 * still be read to its end, and a read that fails, fails as it would have without the tier).
 */
export class SharedLoad {
  readonly #sizeBytes: number
  readonly #source: AsyncIterator<Buffer>
  readonly #end: LoadEnd
  /** The pieces read so far, as the source handed them (never written again); none once loaded. */
  #pieces: Buffer[] = []
  #body: Buffer | undefined
  #state: 'loading' | 'loaded' | 'stopped' = 'loading'
  #more: Promise<void> | undefined
  #wake: (() => void) | undefined

  constructor(sizeBytes: number, source: AsyncIterable<Buffer>, end: LoadEnd) {
    this.#sizeBytes = sizeBytes
    this.#source = source[Symbol.asyncIterator]()
    this.#end = end
    void this.#load()
  }

  /** The whole body, once loaded (until the tier lets it go). */
  get body(): Buffer | undefined {
    return this.#body
  }

  /**
   * The tier no longer keeps the entry (or the read failed): the read stops, the pieces and the body are
   * dropped, and its followers go on with their own readers.
   */
  stopKeeping(): void {
    if (this.#state === 'stopped') return
    if (this.#state === 'loading') this.#source.return?.().catch(() => {})
    this.#state = 'stopped'
    this.#pieces = []
    this.#body = undefined
    this.#wakeFollowers()
  }

  /**
   * A read of the body from its start, following the load; `own` (a reader of the same body, opened
   * but not started) reads the rest if the load stops first, and is closed otherwise.
   */
  follow(own: AsyncIterable<Buffer>): AsyncIterableIterator<Buffer> {
    let offsetBytes = 0
    let taken = 0
    let rest: AsyncIterator<Buffer> | undefined
    let left = false
    /** Once: its own reader, opened and never started, is closed (one started is closed by `rest`). */
    const leave = () => {
      if (left) return
      left = true
      if (rest === undefined)
        own[Symbol.asyncIterator]()
          .return?.()
          .catch(() => {})
    }
    const iterator: AsyncIterableIterator<Buffer> = {
      [Symbol.asyncIterator]: () => iterator,
      next: async () => {
        if (left) return DONE
        while (!left) {
          if (rest) return rest.next()
          const piece = this.#body ? this.#body.subarray(offsetBytes) : this.#pieces[taken]
          if (piece !== undefined && piece.length > 0) {
            taken++
            offsetBytes += piece.length
            return { done: false, value: piece }
          }
          if (this.#state === 'loaded') break
          if (this.#state === 'stopped') rest = after(own, offsetBytes)
          else await this.#moreRead()
        }
        leave()
        return DONE
      },
      return: async () => {
        leave()
        return (await rest?.return?.()) ?? DONE
      },
    }
    return iterator
  }

  async #load(): Promise<void> {
    let readBytes = 0
    try {
      for (;;) {
        const step = await this.#source.next()
        if (this.#state !== 'loading') return
        if (step.done) break
        readBytes += step.value.length
        if (readBytes > this.#sizeBytes) {
          throw new Error('undici-cache: a stored body is longer than its entry says')
        }
        this.#pieces.push(step.value)
        this.#wakeFollowers()
      }
      if (readBytes < this.#sizeBytes) {
        throw new Error('undici-cache: a stored body is shorter than its entry says')
      }
      this.#body = Buffer.concat(this.#pieces, this.#sizeBytes)
      this.#pieces = []
      this.#state = 'loaded'
      this.#end.loaded(this.#body)
    } catch {
      if (this.#state !== 'loading') return
      this.stopKeeping()
      this.#end.failed()
    }
    this.#wakeFollowers()
  }

  #moreRead(): Promise<void> {
    this.#more ??= new Promise((resolve) => {
      this.#wake = resolve
    })
    return this.#more
  }

  #wakeFollowers(): void {
    const wake = this.#wake
    this.#more = undefined
    this.#wake = undefined
    wake?.()
  }
}

/** `body` read from `offsetBytes` on: the pieces before it are read and dropped. */
async function* after(body: AsyncIterable<Buffer>, offsetBytes: number): AsyncGenerator<Buffer> {
  let skipBytes = offsetBytes
  for await (const piece of body) {
    if (skipBytes >= piece.length) {
      skipBytes -= piece.length
      continue
    }
    yield skipBytes > 0 ? piece.subarray(skipBytes) : piece
    skipBytes = 0
  }
}
