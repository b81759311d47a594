import type { Dispatcher } from 'undici'
import type { EntryMeta } from '../stores/store.js'
import type { BodyDigest } from './body-digest.js'
import type { Ending } from './catch-up.js'
import { ReaderStream, type Upstream } from './reader-stream.js'
import type { OutgoingHeaders } from './response-headers.js'

/** A request waiting on an identical one, ready to be fed the same response as it arrives. */
export interface LiveWaiter {
  handler: Dispatcher.DispatchHandler
  /** The waiter's normalised Vary key for the response's Vary fields; it is fed only when equal. */
  varyKeyFor(responseHeaders: Record<string, string | string[] | undefined>): string
  headers(responseHeaders: Record<string, string | string[] | undefined>): OutgoingHeaders
  /** Whether the response, stored as `meta`, may answer the waiter's request without validation (RFC 9111 §4). */
  reuses(meta: EntryMeta): boolean
  /** The waiter's own `bodyTimeout` request option, when one is set (see ReaderStream#timeBody). */
  bodyTimeoutMs?: number
}

/**
 * Feeds one response to the identical requests that waited on it, as it arrives (RFC 9211
 * `collapsed`). Each waiter keeps its own pace (a ReaderStream); one that falls far
 * behind reads the rest from the store once the entry is committed (else from the origin again),
 * so memory stays bounded.
 */
export class FanOut {
  readonly #streams: ReaderStream[]

  constructor(
    waiters: LiveWaiter[],
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage: string | undefined,
    upstream?: Upstream,
    digest?: BodyDigest,
  ) {
    this.#streams = waiters.map((waiter) => {
      const stream = new ReaderStream(waiter.handler, undefined, upstream, 0, digest)
      stream.start(statusCode, waiter.headers(headers), statusMessage)
      if (waiter.bodyTimeoutMs !== undefined) stream.timeBody(waiter.bodyTimeoutMs)
      return stream
    })
  }

  /** Whether any waiter is still to be handed something. */
  get reading(): boolean {
    return this.#streams.some((stream) => stream.reading)
  }

  /** Whether a waiter's queue is full while it is still fed live (see ReaderStream#stalled). */
  get stalled(): boolean {
    return this.#streams.some((stream) => stream.stalled)
  }

  /** Whether a waiter is still fed live and takes more (one the stalled ones hold up). */
  get flowing(): boolean {
    return this.#streams.some((stream) => stream.reading && !stream.behind && !stream.stalled)
  }

  /** The stalled waiters fall behind: they no longer hold the download. */
  releaseStalled(): void {
    for (const stream of this.#streams) if (stream.stalled) stream.fallBehind()
  }

  data(chunk: Buffer): void {
    for (const stream of this.#streams) stream.data(chunk)
  }

  end(ending: Ending): void {
    for (const stream of this.#streams) stream.end(ending)
  }

  fail(error: Error): void {
    for (const stream of this.#streams) stream.fail(error)
  }

  /** Whether a waiter wants more now (not paused, nothing queued, not ended): one a holding first caller holds up. */
  get waiting(): boolean {
    return this.#streams.some((stream) => stream.waiting)
  }

  /** The waiters that want more leave the download (held by the first caller) for the rest from `ending`. */
  leave(ending: Ending): void {
    for (const stream of this.#streams) if (stream.waiting) stream.leave(ending)
  }

  /** The waiters that fell behind read the rest from `ending` now: the store will not have it. */
  endBehind(ending: Ending): void {
    for (const stream of this.#streams) stream.endIfBehind(ending)
  }
}
