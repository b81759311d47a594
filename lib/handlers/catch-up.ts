import type { Dispatcher } from 'undici'
import { asError } from '../diagnostics.js'
import { isPromise, type StoredEntry } from '../stores/store.js'
import { continueCrc } from './body-digest.js'
import { BodyPump } from './body-pump.js'
import type { RelayController } from './relay-controller.js'
import type { RestFetch } from './rest-from-origin.js'
import { rangeBody } from './serve.js'
import { tellError } from './tell-error.js'

const REST_LOST =
  'undici-cache: the rest of a shared response this reader fell behind on is not in the store (its write failed, or it was removed since), and it cannot be asked of the origin again'

/** The committed entry a reader that fell behind reads the rest from, if it is still stored. */
export type StoredCopy = () => StoredEntry | undefined | Promise<StoredEntry | undefined>

/** How the shared response ended, and where a reader that fell behind finds the rest. */
export interface Ending {
  /** Given when the entry was committed. */
  storedCopy?: StoredCopy
  /** Asks the origin again when the store has no copy (a strong ETag, or a body checked from its start). */
  fromOrigin?: RestFetch
  trailers?: Record<string, string>
}

/**
 * The caller's handler, counting the bytes it is given after `fromByte` (and their check value on from
 * `prefixCrc`, that of the first `fromByte`). A stored body failing midway (evicted, deleted, its store
 * gone; not the caller's abort or throw) has its rest asked of the origin when `fromOrigin` is given,
 * else its error goes on: never a short body.
 */
export function restOnFailure(
  handler: Dispatcher.DispatchHandler,
  relay: RelayController,
  fromByte: number,
  fromOrigin: RestFetch | undefined,
  prefixCrc?: number,
): Dispatcher.DispatchHandler {
  let deliveredBytes = fromByte
  let deliveredCrc = prefixCrc
  let callerThrew = false
  const caller = (call: () => void) => {
    try {
      call()
    } catch (error) {
      callerThrew = true
      throw error
    }
  }
  return {
    onRequestStart: (controller, context) => caller(() => handler.onRequestStart?.(controller, context)),
    onResponseStarted: () => handler.onResponseStarted?.(),
    onResponseStart: (controller, statusCode, headers, statusMessage) =>
      caller(() => handler.onResponseStart?.(controller, statusCode, headers, statusMessage)),
    onResponseData: (controller, chunk) => {
      deliveredBytes += chunk.length
      if (deliveredCrc !== undefined) deliveredCrc = continueCrc(deliveredCrc, chunk)
      caller(() => handler.onResponseData?.(controller, chunk))
    },
    onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
    onResponseError: (controller, error) => {
      if (fromOrigin && !relay.aborted && !callerThrew)
        fromOrigin(deliveredBytes, handler, relay, deliveredCrc)
      else handler.onResponseError?.(controller, error)
    },
  }
}

/**
 * Serves the rest of a shared response, from byte `fromByte` on, to a reader that fell behind: from
 * the committed entry; if it is not there, or its body goes missing midway (evicted, replaced), from
 * the origin again; if the origin cannot resend it either, an error (never a short body). `prefixCrc`:
 * the check value of the reader's first `fromByte` bytes, for the origin's answer to be checked by.
 */
export function catchUp(
  handler: Dispatcher.DispatchHandler,
  relay: RelayController,
  fromByte: number,
  ending: Ending,
  prefixCrc?: number,
): void {
  const counting = restOnFailure(handler, relay, fromByte, ending.fromOrigin, prefixCrc)
  const lost = (error: unknown) => tellError(counting, relay, asError(error))
  const serveRest = (entry: StoredEntry | undefined) => {
    if (!entry) throw new Error(REST_LOST)
    const body = rangeBody(entry, fromByte, entry.sizeBytes - 1)
    const pump = new BodyPump(body, counting, relay, ending.trailers)
    relay.setSource(pump)
    pump.run()
  }
  try {
    const found = ending.storedCopy?.()
    if (isPromise(found)) Promise.resolve(found).then(serveRest).catch(lost)
    else serveRest(found)
  } catch (error) {
    lost(error)
  }
}
