import type { Dispatcher } from 'undici'
import { quietly } from '../exchange.js'

/**
 * Tells a handler its request failed, on a turn of the cache's own (a microtask, a promise): a throw
 * from its onResponseError has no caller to reach there, so it is dropped rather than left to become
 * an uncaught exception (undici keeps such a throw to the request too). On the caller's own call
 * (its abort()), the throw reaches it, as from undici.
 */
export function tellError(
  handler: Dispatcher.DispatchHandler,
  controller: Dispatcher.DispatchController,
  error: Error,
): void {
  quietly(IGNORE, () => handler.onResponseError?.(controller, error))
}

/** The request has failed: a throw as it is told has nobody else to reach. */
export const IGNORE = (): void => {}
