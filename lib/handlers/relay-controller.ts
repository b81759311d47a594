import { type Dispatcher, errors } from 'undici'
import { rawLines } from './shared-lines.js'

type HeaderFields = Record<string, string | string[] | undefined>

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
  rawTrailers = null
  /** The fields the caller was last handed, until their lines are asked for. */
  #headers: HeaderFields | undefined
  #rawHeaders: Buffer[] | null = null
  #source: ResponseSource | undefined
  #paused = false
  /** What the caller passed to abort(), as undici's controllers keep it (null for none). */
  #reason: Error | null = null
  /** Set once aborted: the reason, or undici's own error for an abort without one. */
  #abortError: Error | undefined
  #started = false
  /** onResponseStarted was passed on: once, before an interim response or the final one. */
  #toldStarted = false

  get aborted(): boolean {
    return this.#abortError !== undefined
  }

  /** The error the response ends with since the caller aborted; undefined while not aborted. */
  get abortError(): Error | undefined {
    return this.#abortError
  }

  get paused(): boolean {
    return this.#paused
  }

  get reason(): Error | null {
    return this.#reason
  }

  /**
   * The caller's response fields as lines. undici 8's fetch() reads them here in place of the headers
   * object (as do its request() and stream() with `responseHeaders: 'raw'`); made on first read.
   */
  get rawHeaders(): Buffer[] | null {
    if (this.#headers !== undefined) {
      this.#rawHeaders = rawLines(this.#headers)
      this.#headers = undefined
    }
    return this.#rawHeaders
  }

  /** Another interceptor may rewrite them (undici 8's decompress does). */
  set rawHeaders(lines: Buffer[] | null) {
    this.#headers = undefined
    this.#rawHeaders = lines
  }

  /**
   * Hands the caller its response's head; `rawHeaders` then lists the same fields. undici 8's fetch()
   * takes its response timing from `onResponseStarted`, which undici calls only on the cache's handler.
   */
  respond(
    handler: Dispatcher.DispatchHandler,
    statusCode: number,
    headers: HeaderFields,
    statusMessage: string | undefined,
  ): void {
    this.#headers = headers
    if (!this.#toldStarted) {
      this.#toldStarted = true
      handler.onResponseStarted?.()
    }
    handler.onResponseStart?.(this, statusCode, headers as Record<string, string | string[]>, statusMessage)
  }

  /** Calls the caller's onRequestStart once, however many upstream attempts there are. */
  start(handler: Dispatcher.DispatchHandler, context: unknown): void {
    if (this.#started) return
    this.#started = true
    handler.onRequestStart?.(this, context)
  }

  setSource(source: ResponseSource): void {
    this.#source = source
    if (this.#abortError) source.abort(this.#abortError)
    else if (this.#paused) source.pause()
  }

  /**
   * The caller's response is over: the source is let go. A caller keeps its controller as long as it
   * keeps the response (undici's body stream holds it); the source would keep with it the handlers, the
   * stored body and the store's reader. Later calls have nothing to relay.
   */
  release(): void {
    this.#source = undefined
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
    if (this.#abortError) return
    this.#reason = reason ?? null
    this.#abortError = reason ?? new errors.RequestAbortedError()
    this.#source?.abort(this.#abortError)
  }
}
