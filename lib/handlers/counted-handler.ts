import type { IncomingHttpHeaders } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Dispatcher } from 'undici'
import { asError } from '../diagnostics.js'
import { quietly } from '../exchange.js'
import type { Serving, UnderWay } from '../serving.js'
import { RelayController } from './relay-controller.js'
import { progressOf } from './send-progress.js'
import { IGNORE, tellError } from './tell-error.js'

/**
 * The caller's handler, counted in `serving` until the request is over: its response ended or failed,
 * or (an upgrade) the connection was handed over. Whatever serves it (the origin, the store, a flight
 * it waits on, a catch-up) ends through here, so closing can wait for every request under way, and
 * destroying can abort each through the controller it was given.
 */
export class CountedHandler implements Dispatcher.DispatchHandler, UnderWay {
  readonly #handler: Dispatcher.DispatchHandler
  readonly #serving: Serving
  #controller: Dispatcher.DispatchController | undefined
  /** Set by abort() before the request started: what serves it is aborted as it starts. */
  #abortedWith: Error | undefined
  #over = false
  slot = -1

  constructor(handler: Dispatcher.DispatchHandler, serving: Serving) {
    this.#handler = handler
    this.#serving = serving
    serving.started(this)
  }

  /** Tells `serving` the request is over (once), and lets go of what served it. */
  over(): void {
    if (this.#over) return
    this.#over = true
    this.#serving.finished(this)
    if (this.#controller instanceof RelayController) this.#controller.release()
  }

  /** Ends the request with `reason` now, even one whose store has yet to answer; what serves it stops. */
  abort(reason: Error): void {
    const controller = this.#controller
    // not the caller's own call (destroy() ends every request in turn): a throw from its handler, told
    // as what serves it stops, stays with it
    if (controller) quietly(IGNORE, () => controller.abort(reason))
    else this.#abortedWith = reason
    queueMicrotask(() => tellError(this, controller as Dispatcher.DispatchController, reason))
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#controller = controller
    // aborted before it started: the caller has been told; what serves it stops
    if (this.#abortedWith) controller.abort(this.#abortedWith)
    else this.#handler.onRequestStart?.(controller, context)
  }

  onBodySent(...args: unknown[]): void {
    if (!this.#over) progressOf(this.#handler).onBodySent?.(...args)
  }

  onRequestSent(): void {
    if (!this.#over) progressOf(this.#handler).onRequestSent?.()
  }

  onRequestUpgrade(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    socket: Duplex,
  ): void {
    this.over()
    this.#handler.onRequestUpgrade?.(controller, statusCode, headers, socket)
  }

  /** undici 8's fetch() takes its response timing from this. */
  onResponseStarted(): void {
    if (!this.#over) this.#handler.onResponseStarted?.()
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    if (!this.#over) this.#handler.onResponseStart?.(controller, statusCode, headers, statusMessage)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#over) this.#handler.onResponseData?.(controller, chunk)
  }

  /**
   * The end, or the error, is handed on once (a destroyed request may be told of its end twice). A throw
   * from the caller's onResponseEnd becomes its onResponseError, as in undici's own requests
   * (interceptors.retry throws there to retry a 5xx): every caller's handler is wrapped here, so no
   * code inside the cache sees a caller's throw at the end.
   */
  onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (this.#over) return
    this.over()
    try {
      this.#handler.onResponseEnd?.(controller, trailers)
    } catch (error) {
      try {
        this.#handler.onResponseError?.(controller, asError(error))
      } catch {
        // the response had ended: there is nobody else to tell
      }
    }
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#over) return
    this.over()
    this.#handler.onResponseError?.(controller, error)
  }
}
