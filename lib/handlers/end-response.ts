import type { IncomingHttpHeaders } from 'node:http'
import type { Dispatcher } from 'undici'
import { asError } from '../diagnostics.js'

/**
 * Ends a caller's response. A throw from its onResponseEnd becomes its onResponseError, as in undici's
 * own requests (interceptors.retry throws there to retry a 5xx); a throw from that is its own.
 */
export function endResponse(
  handler: Dispatcher.DispatchHandler,
  controller: Dispatcher.DispatchController,
  trailers: IncomingHttpHeaders,
): void {
  try {
    handler.onResponseEnd?.(controller, trailers)
  } catch (error) {
    try {
      handler.onResponseError?.(controller, asError(error))
    } catch {
      // the response had ended: there is nobody else to tell
    }
  }
}
