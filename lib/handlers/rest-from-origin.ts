import type { Dispatcher } from 'undici'
import type { DispatchOptions } from '../exchange.js'
import { withoutClientConditionals } from '../policy/conditional.js'
import { entityTagOf, isWeakTag, strongMatch } from '../policy/entity-tag.js'
import { singletonValue } from '../policy/headers.js'
import type { Headers } from '../policy/types.js'
import type { RelayController } from './relay-controller.js'

/** Asks the origin again for a shared response from `fromByte` on, for a reader that fell behind. */
export type RestFetch = (
  fromByte: number,
  handler: Dispatcher.DispatchHandler,
  relay: RelayController,
) => void

/**
 * For a response with a strong ETag, a way to fetch its rest when the store has no copy to read it
 * from (the write failed, or the entry was evicted); undefined without one, as bytes from another
 * representation must never be spliced on.
 */
export function restFetcher(
  next: Dispatcher.Dispatch,
  opts: DispatchOptions,
  requestHeaders: Headers,
  responseHeaders: Headers,
): RestFetch | undefined {
  const etag = entityTagOf(responseHeaders)
  if (etag === undefined || isWeakTag(etag)) return undefined
  return (fromByte, handler, relay) => {
    // RFC 9110 §14.2, §13.1.5: the rest if the representation is unchanged, else all of the new one
    const headers = {
      ...withoutClientConditionals(requestHeaders),
      range: `bytes=${fromByte}-`,
      'if-range': etag,
    }
    next({ ...opts, headers }, new RestHandler(fromByte, etag, handler, relay))
  }
}

/** Feeds a reader the bytes it is missing: a 206 from `fromByte`, or a 200 with the same strong ETag. */
class RestHandler implements Dispatcher.DispatchHandler {
  readonly #fromByte: number
  readonly #etag: string
  readonly #downstream: Dispatcher.DispatchHandler
  readonly #relay: RelayController
  #skipBytes = 0
  #refused: Error | undefined

  constructor(
    fromByte: number,
    etag: string,
    downstream: Dispatcher.DispatchHandler,
    relay: RelayController,
  ) {
    this.#fromByte = fromByte
    this.#etag = etag
    this.#downstream = downstream
    this.#relay = relay
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#relay.setSource(controller)
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Headers): void {
    const etag = entityTagOf(headers)
    const same = etag !== undefined && strongMatch(etag, this.#etag)
    if (statusCode === 206 && same && startsAt(headers, this.#fromByte)) return
    // RFC 9110 §8.8.3: the same strong ETag means the same bytes, so a whole 200 serves from fromByte
    if (statusCode === 200 && same) {
      this.#skipBytes = this.#fromByte
      return
    }
    this.#refused = new Error(
      `undici-cache: the rest of a shared response could not be fetched again (the origin answered ${statusCode})`,
    )
    controller.abort(this.#refused)
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#skipBytes >= chunk.length) {
      this.#skipBytes -= chunk.length
      return
    }
    const rest = this.#skipBytes > 0 ? chunk.subarray(this.#skipBytes) : chunk
    this.#skipBytes = 0
    this.#downstream.onResponseData?.(this.#relay, rest)
  }

  onResponseEnd(): void {
    this.#downstream.onResponseEnd?.(this.#relay, {})
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#downstream.onResponseError?.(this.#relay, this.#refused ?? error)
  }
}

/** RFC 9110 §14.4: `Content-Range: bytes <first>-<last>/<length>` starting where the reader stopped. */
function startsAt(headers: Headers, fromByte: number): boolean {
  const match = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(singletonValue(headers, 'content-range') ?? '')
  return match !== null && Number(match[1]) === fromByte
}
