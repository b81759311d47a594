import type { Dispatcher } from 'undici'
import type { Headers } from '../policy/types.js'
import type { OutgoingHeaders } from './response-headers.js'

type HeaderHook = (statusCode: number, headers: Headers) => OutgoingHeaders

/** Forwards a response untouched but for its headers (bypass, unsafe methods). */
export class PassHandler implements Dispatcher.DispatchHandler {
  readonly #downstream: Dispatcher.DispatchHandler
  readonly #onHeaders: HeaderHook

  constructor(downstream: Dispatcher.DispatchHandler, onHeaders: HeaderHook) {
    this.#downstream = downstream
    this.#onHeaders = onHeaders
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#downstream.onRequestStart?.(controller, context)
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Headers,
    statusMessage?: string,
  ): void {
    this.#downstream.onResponseStart?.(
      controller,
      statusCode,
      this.#onHeaders(statusCode, headers),
      statusMessage,
    )
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#downstream.onResponseData?.(controller, chunk)
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: Headers): void {
    this.#downstream.onResponseEnd?.(controller, trailers as Record<string, string | string[]>)
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.#downstream.onResponseError?.(controller, error)
  }
}
