import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { Flight } from './flights.js'
import { isPipelineBody } from './key.js'

/** How undici 8 describes the hook below; the symbol itself is not exported. */
const QUEUED_ABORT = 'queued abort'

type QueuedAbortHook = (cancel: (reason: Error) => void) => void

/**
 * The options of a request the cache sends for its caller and maybe for others. undici 8's request(),
 * stream() and fetch() add a hook through which the caller's abort takes a request still waiting for a
 * connection out of the queue at once. With `flight` (a download others may wait on), it cancels the
 * request only once nobody else waits on it: at once if nobody does, else when the last waiter leaves
 * (until the request starts; then the caller's abort reaches the cache as usual). `null`: the request is
 * not the caller's (a background revalidation, the rest of a body for a waiter): the hook is dropped,
 * as undici's own cache interceptor does, and so is the body (see withoutBody). Without either, the
 * options are the caller's own.
 */
export function ownRequestOptions(
  opts: Dispatcher.DispatchOptions,
  flight: Flight | null | undefined,
): Dispatcher.DispatchOptions {
  if (flight === undefined) return opts
  if (flight === null) opts = withoutBody(opts)
  for (const symbol of Object.getOwnPropertySymbols(opts)) {
    if (symbol.description !== QUEUED_ABORT) continue
    const hook = (opts as unknown as Record<symbol, unknown>)[symbol]
    if (flight === null || typeof hook !== 'function') return { ...opts, [symbol]: undefined }
    const onceAlone: QueuedAbortHook = (cancel) =>
      (hook as QueuedAbortHook)((reason) => cancelOnceAlone(flight, () => cancel(reason)))
    return { ...opts, [symbol]: onceAlone }
  }
  return opts
}

/**
 * A request the cache sends on its own carries none of the caller's body: the only one a cached
 * request has is the stream a pipeline() caller writes into, which is the caller's request's alone.
 */
export function withoutBody(opts: Dispatcher.DispatchOptions): Dispatcher.DispatchOptions {
  return opts.body === undefined || opts.body === null ? opts : { ...opts, body: null }
}

function cancelOnceAlone(flight: Flight, cancel: () => void): void {
  if (flight.waiterCount === 0) {
    cancel()
    return
  }
  const before = flight.onLeave
  flight.onLeave = (reason) => {
    before?.(reason)
    if (flight.waiterCount === 0) cancel()
  }
}

/** The per-request `cache` option is not the next dispatcher's business. */
export function withoutCacheOption<T extends Dispatcher.DispatchOptions & { cache?: unknown }>(opts: T): T {
  const { cache: _ours, ...rest } = opts
  return rest as T
}

/**
 * The pipeline() stream of a request the cache answers itself (a hit, a waiter served or fed what an
 * identical request got, only-if-cached's 504): its request is never sent, so what the caller writes
 * into it is read and dropped at once, and the writing finishes. Only a stream nothing reads; any other
 * body is left as it is (an only-if-cached POST's file stream is not read for nothing).
 */
export function dropUnsentBody(opts: Dispatcher.DispatchOptions): void {
  const body = opts.body
  if (!isPipelineBody(body)) return
  const stream = body as Readable
  if (stream.readableFlowing === null && !stream.destroyed) stream.resume()
}
