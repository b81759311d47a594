import { type Dispatcher, errors } from 'undici'
import { asError } from '../diagnostics.js'
import type { BodyDigest } from './body-digest.js'
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
  /** Whether the cache holds the download (for a reader that stopped, or a store behind). */
  held(): boolean
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
  /** The check value before each queued chunk, when the download is checked (BodyDigest). */
  #marks: number[] = []
  #queuedBytes = 0
  #deliveredBytes = 0
  #paused = false
  #behind = false
  #ended = false
  #done = false
  #ending: Ending = {}
  readonly #digest: BodyDigest | undefined
  /** Once fallen behind: the check value of the bytes delivered, for the origin's resent body to match. */
  #prefixCrc: number | undefined
  /** The caller's own bodyTimeout while the download goes on (see timeBody). */
  #bodyTimer: NodeJS.Timeout | undefined

  /**
   * `deliveredBytes`: what the caller already has (a first caller that read the origin directly until
   * now); `digest`: the download's, when it is checked from its first byte.
   */
  constructor(
    handler: Dispatcher.DispatchHandler,
    relay = new RelayController(),
    upstream?: Upstream,
    deliveredBytes = 0,
    digest?: BodyDigest,
  ) {
    this.#handler = handler
    this.#relay = relay
    this.#upstream = upstream
    this.#deliveredBytes = deliveredBytes
    this.#digest = digest
    this.#relay.setSource(this)
  }

  /**
   * A full queue while still to be fed live (not done, not behind): only then may it hold the download,
   * paused or not yet drained. A short pause (fetch()'s backpressure between two reads) only queues.
   */
  get stalled(): boolean {
    return !this.#done && !this.#behind && this.#queuedBytes > MAX_QUEUED_BYTES
  }

  /** Wants more now: not paused, nothing queued, still to be fed (live, or its rest once behind). */
  get waiting(): boolean {
    return this.reading && !this.#paused && this.#queue.length === 0
  }

  /** Fell behind: reads the rest once the response has ended. */
  get behind(): boolean {
    return this.#behind
  }

  /** Still reads the download: not ended (nor fed the rest from elsewhere), failed nor aborted. */
  get reading(): boolean {
    return !this.#done && !this.#ended
  }

  start(statusCode: number, headers: OutgoingHeaders, statusMessage: string | undefined): void {
    this.#guard(() => {
      this.#relay.start(this.#handler, {})
      // a caller that aborted as it started has been told (abort())
      if (!this.#relay.aborted) this.#relay.respond(this.#handler, statusCode, headers, statusMessage)
    })
  }

  /**
   * The caller's own `bodyTimeout`, as undici counts it: from the response's start, again from each
   * chunk of the download and from each resume; when it runs out while the caller is not paused, the
   * caller fails with UND_ERR_BODY_TIMEOUT and leaves the download to the others. A wait while the
   * cache holds the download (for another reader, or its store) is not the origin's: it counts again.
   * It stops once the download has ended (the rest is read from the store, or from a request of its own).
   */
  timeBody(ms: number): void {
    if (this.#done || this.#ended) return
    this.#bodyTimer = setTimeout(() => {
      if (this.#paused || this.#ended) return
      if (this.#upstream?.held()) this.#bodyTimer?.refresh()
      else this.abort(new errors.BodyTimeoutError())
    }, ms).unref()
  }

  /** A chunk of the download (added to the digest after every reader has had it). */
  data(chunk: Buffer): void {
    this.#bodyTimer?.refresh()
    if (this.#done || this.#behind) return
    if (!this.#paused && this.#queue.length === 0) {
      this.#deliver(chunk)
      return
    }
    this.#queue.push(chunk)
    if (this.#digest) this.#marks.push(this.#digest.crc)
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
    // the check value up to the first byte not delivered: before the queue's first chunk, or all so far
    this.#prefixCrc = this.#marks[0] ?? this.#digest?.crc
    this.#queue = []
    this.#marks = []
    this.#queuedBytes = 0
  }

  /** The shared response ended (or, for a reader that fell behind, goes on without it: see catchUp). */
  end(ending: Ending): void {
    if (this.#ended) return
    this.#ended = true
    this.#stopBodyTimer()
    this.#ending = ending
    if (!this.#paused) this.#advance()
  }

  /** A reader that fell behind reads the rest from `ending` at once: the store will not have it. */
  endIfBehind(ending: Ending): void {
    if (this.#behind) this.end(ending)
  }

  /** Leaves the download, held up by another reader, for the rest from `ending` (the origin) at once. */
  leave(ending: Ending): void {
    this.fallBehind()
    this.end(ending)
  }

  /**
   * The download failed: a reader still reading it fails (one that fell behind and was sent elsewhere
   * for the rest does not). A throw from this reader's handler is its own: the others are still told.
   */
  fail(error: Error): void {
    if (this.#done || this.#ended) return
    this.#done = true
    this.#stopBodyTimer()
    tellError(this.#handler, this.#relay, error)
  }

  pause(): void {
    this.#paused = true
    this.#upstream?.paceChanged()
  }

  resume(): void {
    this.#paused = false
    this.#bodyTimer?.refresh()
    this.#upstream?.paceChanged()
    setImmediate(() => this.#advance())
  }

  abort(reason: Error): void {
    if (this.#done) return
    this.#done = true
    this.#stopBodyTimer()
    this.#queue = []
    this.#marks = []
    queueMicrotask(() => tellError(this.#handler, this.#relay, reason))
    this.#upstream?.readerGone(reason)
  }

  #stopBodyTimer(): void {
    clearTimeout(this.#bodyTimer)
    this.#bodyTimer = undefined
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
    const hadQueue = this.#queue.length > 0
    while (!this.#paused && !this.#done && this.#queue.length > 0) {
      const chunk = this.#queue.shift() as Buffer
      this.#marks.shift()
      this.#queuedBytes -= chunk.length
      this.#deliver(chunk)
    }
    // room in the queue again, or it wants more now: the download may go on, or a hold be timed
    if ((wasFull && !this.stalled) || (hadQueue && this.waiting)) this.#upstream?.paceChanged()
    if (this.#paused || this.#done || !this.#ended || this.#queue.length > 0) return
    if (this.#behind) {
      this.#done = true
      catchUp(this.#handler, this.#relay, this.#deliveredBytes, this.#ending, this.#prefixCrc)
      return
    }
    this.#done = true
    this.#handler.onResponseEnd?.(this.#relay, this.#ending.trailers ?? {})
  }
}
