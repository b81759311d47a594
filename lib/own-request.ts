import type { Dispatcher } from 'undici'
import type { Flight } from './flights.js'

/** How undici 8 describes the hook below; the symbol itself is not exported. */
const QUEUED_ABORT = 'queued abort'

type QueuedAbortHook = (cancel: (reason: Error) => void) => void

/**
 * The options of a request the cache sends with a handler of its own. undici 8's request(), stream()
 * and fetch() add a hook through which the caller's abort takes a request still waiting for a
 * connection out of the queue at once. Such a request may be shared: the hook then cancels it only
 * while `mayCancel()` (no other request waits on it), else the caller's abort reaches the cache when
 * the request starts, and the download goes on for the others. Without `mayCancel` (a background
 * revalidation, which is nobody's) the hook is dropped, as undici's own cache interceptor does.
 */
export function ownRequestOptions(
  opts: Dispatcher.DispatchOptions,
  mayCancel?: () => boolean,
): Dispatcher.DispatchOptions {
  for (const symbol of Object.getOwnPropertySymbols(opts)) {
    if (symbol.description !== QUEUED_ABORT) continue
    const hook = (opts as unknown as Record<symbol, unknown>)[symbol]
    if (mayCancel === undefined || typeof hook !== 'function') return { ...opts, [symbol]: undefined }
    const onlyIfAlone: QueuedAbortHook = (cancel) =>
      (hook as QueuedAbortHook)((reason) => {
        if (mayCancel()) cancel(reason)
      })
    return { ...opts, [symbol]: onlyIfAlone }
  }
  return opts
}

/** While no other request waits on `flight`: its caller's abort may cancel it as undici would. */
export function aloneOn(flight: Flight | undefined): () => boolean {
  return () => (flight?.waiterCount ?? 0) === 0
}
