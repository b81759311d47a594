import type { IncomingHttpHeaders } from 'node:http'
import type { Duplex } from 'node:stream'
import { type Dispatcher, errors } from 'undici'
import { rawLines } from './shared-lines.js'

/** A caller's handler in undici's old API (undici 6, which Node 20's global fetch bundles). */
interface LegacyHandler {
  onConnect?(abort: (reason?: Error) => void, context?: unknown): void
  onResponseStarted?(): void
  onHeaders?(
    statusCode: number,
    rawHeaders: Buffer[],
    resume: () => void,
    statusText: string,
  ): boolean | undefined
  onUpgrade?(statusCode: number, rawHeaders: Buffer[], socket: Duplex): void
  onData?(chunk: Buffer): boolean | undefined
  onComplete?(rawTrailers: Buffer[]): void
  onError?(error: Error): void
}

/** A handler in the old API: no onRequestStart. */
export function isLegacyHandler(handler: object): handler is LegacyHandler {
  return typeof (handler as Dispatcher.DispatchHandler).onRequestStart !== 'function'
}

/** The methods undici requires of an old-API handler, checked as its dispatch() does before it takes one. */
export function assertLegacyHandler(handler: LegacyHandler, opts: Dispatcher.DispatchOptions): void {
  const needed = opts.upgrade || opts.method === 'CONNECT' ? 'onUpgrade' : 'onHeaders'
  assertMethod(handler, 'onConnect')
  assertMethod(handler, 'onError')
  assertMethod(handler, needed)
}

/** The caller's handler in the new API: an old-API one is checked as undici checks it, then adapted. */
export function newApiHandler(
  handler: Dispatcher.DispatchHandler,
  opts: Dispatcher.DispatchOptions,
): Dispatcher.DispatchHandler {
  if (!isLegacyHandler(handler)) return handler
  assertLegacyHandler(handler, opts)
  return new LegacyHandlerAdapter(handler)
}

function assertMethod(handler: LegacyHandler, name: keyof LegacyHandler): void {
  if (typeof handler[name] !== 'function') throw new errors.InvalidArgumentError(`invalid ${name} method`)
}

/** Speaks the new handler API to the dispatchers below and the old one to the caller's handler. */
export class LegacyHandlerAdapter implements Dispatcher.DispatchHandler {
  readonly #handler: LegacyHandler

  constructor(handler: LegacyHandler) {
    this.#handler = handler
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#handler.onConnect?.((reason) => controller.abort(reason as Error), context)
  }

  onRequestUpgrade(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    socket: Duplex,
  ): void {
    this.#handler.onUpgrade?.(statusCode, rawLines(headers), socket)
  }

  /** Told once, by undici or by the cache's controller, before the first response head (1xx or final). */
  onResponseStarted(): void {
    this.#handler.onResponseStarted?.()
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    const resume = () => controller.resume()
    if (this.#handler.onHeaders?.(statusCode, rawLines(headers), resume, statusMessage ?? '') === false) {
      controller.pause()
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#handler.onData?.(chunk) === false) controller.pause()
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.#handler.onComplete?.(rawLines(trailers))
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (!this.#handler.onError) throw error
    this.#handler.onError(error)
  }
}
