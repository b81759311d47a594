import type { Dispatcher } from 'undici'

/**
 * The caller of a background revalidation (RFC 5861 §3): reads and drops the response; a
 * connection error or a 5xx goes to `onError`, never to a user.
 */
export function backgroundHandler(onError: (error: Error) => void): Dispatcher.DispatchHandler {
  return {
    onRequestStart() {},
    onResponseStart(_controller, statusCode) {
      if (statusCode >= 500) onError(new Error(`background revalidation answered ${statusCode}`))
    },
    onResponseData() {},
    onResponseEnd() {},
    onResponseError(_controller, error) {
      onError(error)
    },
  }
}
