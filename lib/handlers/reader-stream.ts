import type { Dispatcher } from 'undici'
import { asError } from '../diagnostics.js'
import { catchUp, type Ending } from './catch-up.js'
import { RelayController, type ResponseSource } from './relay-controller.js'
import type { OutgoingHeaders } from './response-headers.js'
import { tellError } from './tell-error.js'

/** Bytes a reader that stopped reading may fall behind; past that it catches up from the store later. */
const MAX_QUEUED_BYTES = 1024 * 1024

/** What a reader tells the download it shares with others (its pace counts only for the first caller). */
export interface Upstream {
  /** The reader paused or resumed, or its queue is full and it may not fall behind. */
  paceChanged(): void
  /** The reader is gone: it aborted, or its handler threw. */
  readerGone(reason: Error): void
  /** Whether the reader may drop its queue and read the rest from the store once it is committed. */
  mayFallBehind(): boolean
}

/**
 * One caller's copy of a shared response: chunks handed on as they arrive, queued while it is
 * paused; past MAX_QUEUED_BYTES it falls behind and reads the rest from the store. Its pace and
 * its abort reach the download only through `upstream`, so they never hold up another reader.
 */
export class ReaderStream implements ResponseSource {
  readonly #handler: Dispatcher.DispatchHandler
  readonly #relay: RelayController
  readonly #upstream: Upstream | undefined
  #queue: Buffer[] = []
  #queuedBytes = 0
  #deliveredBytes = 0
  #paused = false
  #behind = false
  #ended = false
  #done = false
  #ending: Ending = {}

  /** `deliveredBytes`: what the caller already has (a first caller that read the origin directly until now). */
  constructor(
    handler: Dispatcher.DispatchHandler,
    relay = new RelayController(),
    upstream?: Upstream,
    deliveredBytes = 0,
  ) {
    this.#handler = handler
    this.#relay = relay
    this.#upstream = upstream
    this.#deliveredBytes = deliveredBytes
    this.#relay.setSource(this)
  }

  /**
   * A full queue while still to be fed live (not done, not behind): only then may it hold the download,
   * paused or not yet drained. A short pause (fetch()'s backpressure between two reads) only queues.
   */
  get stalled(): boolean {
    return !this.#done && !this.#behind && this.#queuedBytes > MAX_QUEUED_BYTES
  }

  /** Fell behind: reads the rest once the response has ended. */
  get behind(): boolean {
    return this.#behind
  }

  /** Still to be handed something: not ended, failed nor aborted. */
  get reading(): boolean {
    return !this.#done
  }

  start(statusCode: number, headers: OutgoingHeaders, statusMessage: string | undefined): void {
    this.#guard(() => {
      this.#relay.start(this.#handler, {})
      // a caller that aborted as it started has been told (abort())
      if (!this.#relay.aborted) this.#relay.respond(this.#handler, statusCode, headers, statusMessage)
    })
  }

  data(chunk: Buffer): void {
    if (this.#done || this.#behind) return
    if (!this.#paused && this.#queue.length === 0) {
      this.#deliver(chunk)
      return
    }
    this.#queue.push(chunk)
    this.#queuedBytes += chunk.length
    if (this.#queuedBytes <= MAX_QUEUED_BYTES) return
    if (this.#upstream && !this.#upstream.mayFallBehind()) {
      // nobody else needs the download, or the rest could not be read later: it waits for this reader
      this.#upstream.paceChanged()
      return
    }
    this.fallBehind()
  }

  /** Drops what is queued: the rest is read once the response has ended (from the store, or the origin). */
  fallBehind(): void {
    if (this.#done || this.#behind) return
    this.#behind = true
    this.#queue = []
    this.#queuedBytes = 0
  }

  /** The shared response ended. */
  end(ending: Ending): void {
    this.#ended = true
    this.#ending = ending
    if (!this.#paused) this.#advance()
  }

  /** A throw from this reader's handler is its own: the others sharing the download are still told. */
  fail(error: Error): void {
    if (this.#done) return
    this.#done = true
    tellError(this.#handler, this.#relay, error)
  }

  /** Fails a reader that fell behind now, when the rest will be found nowhere (see catchUp). */
  failIfBehind(error: Error): void {
    if (this.#behind) this.fail(error)
  }

  pause(): void {
    this.#paused = true
    this.#upstream?.paceChanged()
  }

  resume(): void {
    this.#paused = false
    this.#upstream?.paceChanged()
    setImmediate(() => this.#advance())
  }

  abort(reason: Error): void {
    if (this.#done) return
    this.#done = true
    this.#queue = []
    queueMicrotask(() => tellError(this.#handler, this.#relay, reason))
    this.#upstream?.readerGone(reason)
  }

  #deliver(chunk: Buffer): void {
    this.#deliveredBytes += chunk.length
    this.#guard(() => this.#handler.onResponseData?.(this.#relay, chunk))
  }

  /** A reader's handler that throws fails that reader alone, never the shared download. */
  #guard(call: () => void): void {
    try {
      call()
    } catch (error) {
      this.abort(asError(error))
    }
  }

  /** Hands on what is queued while not paused; at the end, finishes or catches up from the store. */
  #advance(): void {
    const wasFull = this.stalled
    while (!this.#paused && !this.#done && this.#queue.length > 0) {
      const chunk = this.#queue.shift() as Buffer
      this.#queuedBytes -= chunk.length
      this.#deliver(chunk)
    }
    // room in the queue again: the download may go on
    if (wasFull && !this.stalled) this.#upstream?.paceChanged()
    if (this.#paused || this.#done || !this.#ended || this.#queue.length > 0) return
    if (this.#behind) {
      this.#done = true
      catchUp(this.#handler, this.#relay, this.#deliveredBytes, this.#ending)
      return
    }
    this.#done = true
    this.#handler.onResponseEnd?.(this.#relay, this.#ending.trailers ?? {})
  }
}
