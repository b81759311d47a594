import type { IncomingHttpHeaders } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { Serving } from '../serving.js'

/**
 * The caller's handler, counted in `serving` until the request is over: its response ended or failed,
 * or (an upgrade) the connection was handed over. Whatever serves it (the origin, the store, a flight
 * it waits on, a catch-up) ends through here, so closing can wait for every request under way.
 */
export class CountedHandler implements Dispatcher.DispatchHandler {
  readonly #handler: Dispatcher.DispatchHandler
  readonly #serving: Serving
  #over = false

  constructor(handler: Dispatcher.DispatchHandler, serving: Serving) {
    this.#handler = handler
    this.#serving = serving
    serving.started()
  }

  /** Tells `serving` the request is over (once). */
  over(): void {
    if (this.#over) return
    this.#over = true
    this.#serving.finished()
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#handler.onRequestStart?.(controller, context)
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

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    this.#handler.onResponseStart?.(controller, statusCode, headers, statusMessage)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#handler.onResponseData?.(controller, chunk)
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.over()
    this.#handler.onResponseEnd?.(controller, trailers)
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.over()
    this.#handler.onResponseError?.(controller, error)
  }
}
