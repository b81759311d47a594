import type { Dispatcher } from 'undici'
import type { StoredEntry } from '../stores/store.js'
import { BodyPump } from './body-pump.js'
import { RelayController, type ResponseSource } from './relay-controller.js'
import type { OutgoingHeaders } from './response-headers.js'
import { rangeBody } from './serve.js'

/** Bytes a waiter that stopped reading may fall behind; past that it catches up from the store later. */
const MAX_QUEUED_BYTES = 1024 * 1024

/** A request waiting on an identical one, ready to be fed the same response as it arrives. */
export interface LiveWaiter {
  handler: Dispatcher.DispatchHandler
  /** The waiter's normalised Vary key for the response's Vary fields; it is fed only when equal. */
  varyKeyFor(responseHeaders: Record<string, string | string[] | undefined>): string
  headers(responseHeaders: Record<string, string | string[] | undefined>): OutgoingHeaders
}

/** Where a waiter that fell behind reads the rest: the committed entry, or nothing. */
export type StoredCopy = () => StoredEntry | undefined | Promise<StoredEntry | undefined>

/** One waiter's copy of the response: chunks handed on as they arrive, queued while it is paused. */
class WaiterStream implements ResponseSource {
  readonly #handler: Dispatcher.DispatchHandler
  readonly #relay = new RelayController()
  #queue: Buffer[] = []
  #queuedBytes = 0
  #deliveredBytes = 0
  #paused = false
  #behind = false
  #ended = false
  #done = false
  #storedCopy: StoredCopy | undefined

  constructor(handler: Dispatcher.DispatchHandler) {
    this.#handler = handler
    this.#relay.setSource(this)
  }

  start(statusCode: number, headers: OutgoingHeaders, statusMessage: string | undefined): void {
    this.#guard(() => {
      this.#relay.start(this.#handler, {})
      this.#handler.onResponseStart?.(this.#relay, statusCode, headers, statusMessage)
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
    if (this.#queuedBytes > MAX_QUEUED_BYTES) {
      this.#behind = true
      this.#queue = []
      this.#queuedBytes = 0
    }
  }

  /** The response ended and, if `storedCopy` is given, is committed in the store. */
  end(storedCopy: StoredCopy | undefined): void {
    this.#ended = true
    this.#storedCopy = storedCopy
    if (!this.#paused) this.#advance()
  }

  fail(error: Error): void {
    if (this.#done) return
    this.#done = true
    this.#handler.onResponseError?.(this.#relay, error)
  }

  pause(): void {
    this.#paused = true
  }

  resume(): void {
    this.#paused = false
    setImmediate(() => this.#advance())
  }

  abort(reason: Error): void {
    if (this.#done) return
    this.#done = true
    this.#queue = []
    queueMicrotask(() => this.#handler.onResponseError?.(this.#relay, reason))
  }

  #deliver(chunk: Buffer): void {
    this.#deliveredBytes += chunk.length
    this.#guard(() => this.#handler.onResponseData?.(this.#relay, chunk))
  }

  /** A waiter's handler that throws fails that waiter alone, never the shared download. */
  #guard(call: () => void): void {
    try {
      call()
    } catch (error) {
      this.abort(error instanceof Error ? error : new Error(String(error)))
    }
  }

  /** Hands on what is queued while not paused; at the end, finishes or catches up from the store. */
  #advance(): void {
    while (!this.#paused && !this.#done && this.#queue.length > 0) {
      const chunk = this.#queue.shift() as Buffer
      this.#queuedBytes -= chunk.length
      this.#deliver(chunk)
    }
    if (this.#paused || this.#done || !this.#ended || this.#queue.length > 0) return
    if (this.#behind) {
      this.#catchUp()
      return
    }
    this.#done = true
    this.#guard(() => this.#handler.onResponseEnd?.(this.#relay, {}))
  }

  #catchUp(): void {
    this.#done = true
    const fail = (error: unknown) => {
      this.#done = false
      this.fail(error instanceof Error ? error : new Error(String(error)))
    }
    const serveRest = (entry: StoredEntry | undefined) => {
      if (!entry) return fail(new Error('undici-cache: the shared response was not stored; its rest is lost'))
      const pump = new BodyPump(
        rangeBody(entry, this.#deliveredBytes, entry.sizeBytes - 1),
        this.#handler,
        this.#relay,
      )
      this.#relay.setSource(pump)
      pump.run()
    }
    try {
      const found = this.#storedCopy?.()
      if (found instanceof Promise) found.then(serveRest, fail)
      else serveRest(found)
    } catch (error) {
      fail(error)
    }
  }
}

/**
 * Feeds one response to the identical requests that waited on it, as it arrives (RFC 9211
 * `collapsed`). Each waiter keeps its own pace; one that falls more than MAX_QUEUED_BYTES behind
 * reads the rest from the store once the entry is committed, so memory stays bounded.
 */
export class FanOut {
  readonly #streams: WaiterStream[]

  constructor(
    waiters: LiveWaiter[],
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage: string | undefined,
  ) {
    this.#streams = waiters.map((waiter) => {
      const stream = new WaiterStream(waiter.handler)
      stream.start(statusCode, waiter.headers(headers), statusMessage)
      return stream
    })
  }

  data(chunk: Buffer): void {
    for (const stream of this.#streams) stream.data(chunk)
  }

  end(storedCopy: StoredCopy | undefined): void {
    for (const stream of this.#streams) stream.end(storedCopy)
  }

  fail(error: Error): void {
    for (const stream of this.#streams) stream.fail(error)
  }
}
