import type { IncomingHttpHeaders } from 'node:http'
import type { Duplex } from 'node:stream'
import { type Dispatcher, errors } from 'undici'

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

function assertMethod(handler: LegacyHandler, name: keyof LegacyHandler): void {
  if (typeof handler[name] !== 'function') throw new errors.InvalidArgumentError(`invalid ${name} method`)
}

/**
 * One name/value pair per field line. undici 7's own adapter gives a repeated field as one name with a
 * nested array of values, which undici 6 joins with commas: two Set-Cookie lines became one.
 * The lines are encoded in one latin1 write and handed out as views of it (one Buffer per response,
 * not one per name and value).
 */
function rawLines(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Buffer[] {
  const lengths: number[] = []
  let text = ''
  const add = (name: string, line: unknown) => {
    const lineText = String(line)
    lengths.push(name.length, lineText.length)
    text += name + lineText
  }
  for (const [name, value] of Object.entries(headers)) {
    if (Array.isArray(value)) for (const line of value) add(name, line)
    else if (value !== undefined) add(name, value)
  }
  if (lengths.length === 0) return []
  const bytes = Buffer.from(text, 'latin1')
  const raw = new Array<Buffer>(lengths.length)
  let start = 0
  for (let index = 0; index < lengths.length; index++) {
    const end = start + (lengths[index] as number)
    raw[index] = bytes.subarray(start, end)
    start = end
  }
  return raw
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

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    this.#handler.onResponseStarted?.()
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
