import type { Dispatcher } from 'undici'

/** How undici 8 describes the hook below; the symbol itself is not exported. */
const QUEUED_ABORT = 'queued abort'

/**
 * The options of a request the cache sends with a handler of its own (a download others may share,
 * a revalidation, a request sent again, the rest of a body). undici 8's request(), stream() and fetch()
 * add a hook through which the caller's abort takes a request waiting for a connection out of the
 * queue at once. Such a request is no longer only the caller's: its abort reaches the cache through
 * the controller instead, and the cache decides (a download goes on for the requests that wait on
 * it). undici's own cache interceptor clears the hook on its background revalidations likewise.
 */
export function ownRequestOptions(opts: Dispatcher.DispatchOptions): Dispatcher.DispatchOptions {
  for (const symbol of Object.getOwnPropertySymbols(opts)) {
    if (symbol.description === QUEUED_ABORT) return { ...opts, [symbol]: undefined }
  }
  return opts
}
