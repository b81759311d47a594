import type { Dispatcher } from 'undici'

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
  try {
    handler.onResponseError?.(controller, error)
  } catch {
    // the request has failed: there is nobody else to tell
  }
}

/** Runs what may tell a handler its request failed (an abort the cache makes), dropping a throw so told. */
export function tellErrorFrom(call: () => void): void {
  try {
    call()
  } catch {
    // the request has failed: there is nobody else to tell
  }
}
