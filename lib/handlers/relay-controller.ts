import type { Dispatcher } from 'undici'

/** Whatever currently produces the response: the origin's controller or a store reader. */
export interface ResponseSource {
  pause(): void
  resume(): void
  abort(reason: Error): void
}

/**
 * The one controller a caller's handler ever sees. It relays pause/resume/abort to the current
 * source, so a response can switch from the origin to the store (e.g. after a 304) unseen.
 */
export class RelayController implements Dispatcher.DispatchController {
  rawHeaders = null
  rawTrailers = null
  #source: ResponseSource | undefined
  #paused = false
  #reason: Error | null = null
  #started = false

  get aborted(): boolean {
    return this.#reason !== null
  }

  get paused(): boolean {
    return this.#paused
  }

  get reason(): Error | null {
    return this.#reason
  }

  /** Calls the caller's onRequestStart once, however many upstream attempts there are. */
  start(handler: Dispatcher.DispatchHandler, context: unknown): void {
    if (this.#started) return
    this.#started = true
    handler.onRequestStart?.(this, context)
  }

  setSource(source: ResponseSource): void {
    this.#source = source
    if (this.#reason) source.abort(this.#reason)
    else if (this.#paused) source.pause()
  }

  pause(): void {
    this.#paused = true
    this.#source?.pause()
  }

  resume(): void {
    this.#paused = false
    this.#source?.resume()
  }

  abort(reason?: Error): void {
    if (this.#reason) return
    this.#reason = reason ?? new DOMException('The operation was aborted', 'AbortError')
    this.#source?.abort(this.#reason)
  }
}
