import type { Dispatcher } from 'undici'
import { asError } from '../diagnostics.js'
import type { StoredEntry } from '../stores/store.js'
import { BodyPump } from './body-pump.js'
import type { RelayController } from './relay-controller.js'
import type { RestFetch } from './rest-from-origin.js'
import { rangeBody } from './serve.js'

const REST_LOST =
  'undici-cache: the rest of a shared response this reader fell behind on is not in the store (its write failed, or it was removed since), and the origin gave no strong ETag to ask for it again'

/** The committed entry a reader that fell behind reads the rest from, if it is still stored. */
export type StoredCopy = () => StoredEntry | undefined | Promise<StoredEntry | undefined>

/** How the shared response ended, and where a reader that fell behind finds the rest. */
export interface Ending {
  /** Given when the entry was committed. */
  storedCopy?: StoredCopy
  /** Asks the origin again when the store has no copy (given for a response with a strong ETag). */
  fromOrigin?: RestFetch
  trailers?: Record<string, string>
}

/**
 * Serves the rest of a shared response, from byte `fromByte` on, to a reader that fell behind: from
 * the committed entry; if it is not there, or its body goes missing midway (evicted, replaced), from
 * the origin again; if the origin cannot resend it either, an error (never a short body).
 */
export function catchUp(
  handler: Dispatcher.DispatchHandler,
  relay: RelayController,
  fromByte: number,
  ending: Ending,
): void {
  let deliveredBytes = fromByte
  let callerThrew = false
  const fromOriginOr = (error: unknown) => {
    if (ending.fromOrigin && !relay.aborted && !callerThrew)
      return ending.fromOrigin(deliveredBytes, handler, relay)
    handler.onResponseError?.(relay, asError(error))
  }
  // the caller's handler, counting what it is given; a store read failing midway goes to the origin
  const counting: Dispatcher.DispatchHandler = {
    onResponseData: (controller, chunk) => {
      deliveredBytes += chunk.length
      try {
        handler.onResponseData?.(controller, chunk)
      } catch (error) {
        callerThrew = true
        throw error
      }
    },
    onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
    onResponseError: (_controller, error) => fromOriginOr(error),
  }
  const serveRest = (entry: StoredEntry | undefined) => {
    if (!entry) throw new Error(REST_LOST)
    const body = rangeBody(entry, deliveredBytes, entry.sizeBytes - 1)
    const pump = new BodyPump(body, counting, relay, ending.trailers)
    relay.setSource(pump)
    pump.run()
  }
  try {
    const found = ending.storedCopy?.()
    if (found instanceof Promise) found.then(serveRest).catch(fromOriginOr)
    else serveRest(found)
  } catch (error) {
    fromOriginOr(error)
  }
}
