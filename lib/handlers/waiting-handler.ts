import { type Dispatcher, errors } from 'undici'
import { asError } from '../diagnostics.js'
import { RelayController } from './relay-controller.js'
import { tellError } from './tell-error.js'

/** A waiter's own headersTimeout, and whether the origin has answered the flight it waits on. */
export interface HeadersTimeout {
  ms: number | null | undefined
  answered: () => boolean
}

/**
 * The handler of a request that waits on an identical one in flight. The caller is started as it
 * joins, as undici starts a request it sends, so that its abort is seen at once: an abort while it
 * waits ends it with the reason (and `onAbortWhileWaiting` takes it off the flight). Whatever serves
 * it later (fed live, or re-run through the cache once the flight settles) reaches the caller
 * through the one controller it was given; once it has ended, nothing more does.
 */
export class WaitingHandler implements Dispatcher.DispatchHandler {
  readonly #handler: Dispatcher.DispatchHandler
  readonly #relay = new RelayController()
  #done = false
  /** The caller's own headersTimeout, counted while it waits for the flight to answer it. */
  #headersTimer: NodeJS.Timeout | undefined

  constructor(handler: Dispatcher.DispatchHandler) {
    this.#handler = handler
  }

  /**
   * Starts the caller; false when it aborted at once (then it has been told, and must not wait). Its
   * own headersTimeout (`headersTimeout.ms`) counts while the origin has not answered the flight: a
   * wait that long fails it as undici would (UND_ERR_HEADERS_TIMEOUT), and takes it off the flight.
   */
  start(onAbortWhileWaiting: (reason: Error) => void, headersTimeout?: HeadersTimeout): boolean {
    this.#relay.setSource({
      pause() {},
      resume() {},
      abort: (reason) => {
        onAbortWhileWaiting(reason)
        queueMicrotask(() => tellError(this, this.#relay, reason))
      },
    })
    try {
      this.#relay.start(this.#handler, {})
    } catch (error) {
      // a throw from the caller's onRequestStart is its error, as for any other request
      queueMicrotask(() => tellError(this, this.#relay, asError(error)))
      return false
    }
    if (this.#relay.aborted) return false
    const { ms, answered } = headersTimeout ?? {}
    if (typeof ms === 'number' && ms > 0 && answered && !answered()) {
      const timedOut = () => {
        if (!answered()) this.#relay.abort(new errors.HeadersTimeoutError())
      }
      this.#headersTimer = setTimeout(timedOut, ms).unref()
    }
    return true
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    // served now (re-run through the cache, or sent on with undici's own timers)
    this.#stopTimer()
    this.#relay.setSource(controller)
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    this.#stopTimer()
    if (this.#live()) this.#relay.respond(this.#handler, statusCode, headers, statusMessage)
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#live()) this.#handler.onResponseData?.(this.#relay, chunk)
  }

  onResponseEnd(
    _controller: Dispatcher.DispatchController,
    trailers: Record<string, string | string[] | undefined>,
  ): void {
    if (this.#done) return
    this.#done = true
    this.#stopTimer()
    this.#handler.onResponseEnd?.(this.#relay, trailers)
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error): void {
    if (this.#done) return
    this.#done = true
    this.#stopTimer()
    this.#handler.onResponseError?.(this.#relay, error)
  }

  #stopTimer(): void {
    clearTimeout(this.#headersTimer)
    this.#headersTimer = undefined
  }

  #live(): boolean {
    return !this.#done && !this.#relay.aborted
  }
}
