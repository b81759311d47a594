import type { Dispatcher } from 'undici'
import type { Headers } from '../policy/types.js'
import { RelayController } from './relay-controller.js'
import type { OutgoingHeaders } from './response-headers.js'
import { progressOf } from './send-progress.js'

type HeaderHook = (statusCode: number, headers: Headers) => OutgoingHeaders

/** Forwards a response untouched but for its headers (bypass, unsafe methods). */
export class PassHandler implements Dispatcher.DispatchHandler {
  readonly #downstream: Dispatcher.DispatchHandler
  readonly #onHeaders: HeaderHook
  /** The origin's controller as the caller holds it: its `rawHeaders` list the fields the caller is handed. */
  readonly #relay = new RelayController()

  constructor(downstream: Dispatcher.DispatchHandler, onHeaders: HeaderHook) {
    this.#downstream = downstream
    this.#onHeaders = onHeaders
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#relay.setSource(controller)
    this.#relay.start(this.#downstream, context)
  }

  onBodySent(...args: unknown[]): void {
    progressOf(this.#downstream).onBodySent?.(...args)
  }

  onRequestSent(): void {
    progressOf(this.#downstream).onRequestSent?.()
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Headers,
    statusMessage?: string,
  ): void {
    // RFC 9110 §15.2: an interim response (103 Early Hints) goes on as it came
    const outgoing = statusCode < 200 ? headers : this.#onHeaders(statusCode, headers)
    this.#relay.respond(this.#downstream, statusCode, outgoing, statusMessage)
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#downstream.onResponseData?.(this.#relay, chunk)
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: Headers): void {
    this.#downstream.onResponseEnd?.(this.#relay, trailers as Record<string, string | string[]>)
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#downstream.onResponseError?.(this.#relay, error)
  }
}
