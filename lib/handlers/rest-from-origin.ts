import type { Dispatcher } from 'undici'
import type { DispatchOptions } from '../exchange.js'
import { withoutBody } from '../own-request.js'
import { withoutClientConditionals } from '../policy/conditional.js'
import { entityTagOf, strongEntityTagOf, strongMatch, weakMatch } from '../policy/entity-tag.js'
import { contentLengthBytes, fieldLines, singletonValue } from '../policy/headers.js'
import type { Headers } from '../policy/types.js'
import { continueCrc } from './body-digest.js'
import type { RelayController } from './relay-controller.js'
import { tellError } from './tell-error.js'

/**
 * Asks the origin again for a shared response from `fromByte` on, for a reader that fell behind.
 * `prefixCrc` is the check value of the bytes the reader has (BodyDigest), needed without a strong ETag.
 */
export type RestFetch = (
  fromByte: number,
  handler: Dispatcher.DispatchHandler,
  relay: RelayController,
  prefixCrc?: number,
) => void

/** The response being shared: its fields, its ETag (strong unless `checked`), its length when declared. */
interface Shared {
  headers: Headers
  etag: string | undefined
  sizeBytes: number | undefined
  /** No strong ETag: the whole body is asked for, and the bytes before the rest must check the same. */
  checked: boolean
}

/**
 * RFC 9110 §8 (and RFC 9530's digests): fields that describe the representation, which an answer asked
 * for whole must repeat: the reader keeps those it was given, with the answer's bytes.
 */
const REPRESENTATION_FIELDS = [
  'content-type',
  'content-encoding',
  'content-language',
  'content-location',
  'content-digest',
  'repr-digest',
  'digest',
  'content-md5',
]

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
  const etag = strongEntityTagOf(responseHeaders)
  if (etag === undefined) return undefined
  const sizeBytes = contentLengthBytes(responseHeaders)
  const shared: Shared = { headers: responseHeaders, etag, sizeBytes, checked: false }
  return (fromByte, handler, relay) => {
    // RFC 9110 §14.2, §13.1.5: the rest if the representation is unchanged, else all of the new one
    const range = `bytes=${fromByte}-`
    const headers = { ...withoutClientConditionals(requestHeaders), range, 'if-range': etag }
    next({ ...withoutBody(opts), headers }, new RestHandler(shared, fromByte, handler, relay))
  }
}

/**
 * For a response without a strong ETag whose body was checked from its first byte: the rest comes from
 * the whole body asked for again, spliced on only if its first `fromByte` bytes check as the reader's.
 */
export function checkedRestFetcher(
  next: Dispatcher.Dispatch,
  opts: DispatchOptions,
  requestHeaders: Headers,
  responseHeaders: Headers,
): RestFetch {
  const etag = entityTagOf(responseHeaders)
  const sizeBytes = contentLengthBytes(responseHeaders)
  const shared: Shared = { headers: responseHeaders, etag, sizeBytes, checked: true }
  const headers = withoutClientConditionals(requestHeaders)
  return (fromByte, handler, relay, prefixCrc) => {
    const restHandler = new RestHandler(shared, fromByte, handler, relay, prefixCrc)
    next({ ...withoutBody(opts), headers }, restHandler)
  }
}

/**
 * Feeds a reader the bytes it is missing, from `fromByte` to the very end: a 206 for exactly that
 * range, or a 200 with the same strong ETag, or (checked) a 200 whose first bytes check as the reader's;
 * anything else, or a body that ends early or runs long, is an error, never spliced on.
 */
class RestHandler implements Dispatcher.DispatchHandler {
  readonly #shared: Shared
  readonly #fromByte: number
  readonly #downstream: Dispatcher.DispatchHandler
  readonly #relay: RelayController
  #skipBytes = 0
  /** Bytes the reader is still to be given, when the length is known. */
  #remainingBytes: number | undefined
  #refused: Error | undefined
  /** Checked only: the check value of the reader's first `fromByte` bytes, and of those skipped so far. */
  readonly #expectedCrc: number | undefined
  #skippedCrc: number | undefined

  constructor(
    shared: Shared,
    fromByte: number,
    downstream: Dispatcher.DispatchHandler,
    relay: RelayController,
    expectedCrc?: number,
  ) {
    this.#shared = shared
    this.#fromByte = fromByte
    this.#downstream = downstream
    this.#relay = relay
    this.#expectedCrc = expectedCrc
    if (shared.checked) this.#skippedCrc = 0
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#relay.setSource(controller)
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Headers): void {
    if (statusCode < 200) return
    if (!this.#sameRepresentation(statusCode, headers)) {
      const other = this.#shared.checked && statusCode === 200
      this.#refuse(
        controller,
        other ? 'its answer is another representation' : `the origin answered ${statusCode}`,
      )
      return
    }
    const sizeBytes = this.#completeLength(statusCode, headers)
    if (sizeBytes === null) {
      this.#refuse(controller, 'its answer is not the rest of the same response')
      return
    }
    if (sizeBytes !== undefined) this.#remainingBytes = sizeBytes - this.#fromByte
    // RFC 9110 §8.8.3: the same strong ETag means the same bytes, so a whole 200 serves from fromByte
    if (statusCode === 200) this.#skipBytes = this.#fromByte
    if (this.#skipBytes === 0) this.#checkSkipped(controller)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#refused) return
    let rest = chunk
    if (this.#skipBytes > 0) {
      const skippedBytes = Math.min(this.#skipBytes, chunk.length)
      this.#checkOn(chunk.subarray(0, skippedBytes))
      this.#skipBytes -= skippedBytes
      if (this.#skipBytes > 0 || !this.#checkSkipped(controller)) return
      rest = chunk.subarray(skippedBytes)
      if (rest.length === 0) return
    }
    if (this.#remainingBytes !== undefined) {
      this.#remainingBytes -= rest.length
      if (this.#remainingBytes < 0) {
        this.#refuse(controller, 'its answer runs past the end')
        return
      }
    }
    this.#downstream.onResponseData?.(this.#relay, rest)
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: Headers): void {
    if (this.#skipBytes > 0 || (this.#remainingBytes ?? 0) !== 0) {
      tellError(this.#downstream, this.#relay, refusal('its answer ends early'))
      return
    }
    this.#downstream.onResponseEnd?.(this.#relay, trailers as Record<string, string>)
  }

  /**
   * The caller's own abort() hears a throw from its handler, as from undici; any other failure is of a
   * request the cache made on its own (a hit's caller made none), where such a throw has nobody to reach.
   */
  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    const reason = this.#refused ?? error
    if (this.#relay.aborted) this.#downstream.onResponseError?.(this.#relay, reason)
    else tellError(this.#downstream, this.#relay, reason)
  }

  /**
   * A strong ETag's rest: a 200 or 206 with that ETag. Checked: a 200 with the same representation
   * fields, and ETags that match weakly when both have one. For a reader with no byte yet, whose
   * bytes check nothing, also the same validators: Last-Modified, and an ETag only if there was one.
   */
  #sameRepresentation(statusCode: number, headers: Headers): boolean {
    const etag = entityTagOf(headers)
    const shared = this.#shared
    if (!shared.checked)
      return (
        (statusCode === 200 || statusCode === 206) &&
        etag !== undefined &&
        strongMatch(etag, shared.etag ?? '')
      )
    const same = (name: string) => sameLines(fieldLines(shared.headers, name), fieldLines(headers, name))
    if (statusCode !== 200 || !REPRESENTATION_FIELDS.every(same)) return false
    if (etag !== undefined && shared.etag !== undefined && !weakMatch(etag, shared.etag)) return false
    return (
      this.#fromByte > 0 || ((etag === undefined) === (shared.etag === undefined) && same('last-modified'))
    )
  }

  #checkOn(skipped: Buffer): void {
    if (this.#skippedCrc !== undefined) this.#skippedCrc = continueCrc(this.#skippedCrc, skipped)
  }

  /** Checked: the bytes skipped check as the reader's; else the answer is another body, refused. */
  #checkSkipped(controller: Dispatcher.DispatchController): boolean {
    if (this.#skippedCrc === undefined || this.#skippedCrc === this.#expectedCrc) return true
    this.#refuse(controller, 'its answer begins with other bytes')
    return false
  }

  /**
   * The complete length the answer stands for (undefined when neither it nor the shared response
   * declares one), or null when it is not the rest of the shared response: a 206 must be
   * `bytes <fromByte>-<length - 1>/<length>` (RFC 9110 §14.4), and both lengths, when declared, agree.
   */
  #completeLength(statusCode: number, headers: Headers): number | undefined | null {
    const declared = statusCode === 206 ? rangeToEnd(headers, this.#fromByte) : contentLengthBytes(headers)
    if (declared === null) return null
    const shared = this.#shared.sizeBytes
    if (shared !== undefined && declared !== undefined && declared !== shared) return null
    return declared ?? shared
  }

  #refuse(controller: Dispatcher.DispatchController, why: string): void {
    this.#refused = refusal(why)
    controller.abort(this.#refused)
  }
}

function sameLines(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((line, index) => line.trim() === b[index]?.trim())
}

function refusal(why: string): Error {
  return new Error(`undici-cache: the rest of a shared response could not be fetched again (${why})`)
}

/** The complete length in `Content-Range: bytes <fromByte>-<length - 1>/<length>`, else null. */
function rangeToEnd(headers: Headers, fromByte: number): number | null {
  const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(singletonValue(headers, 'content-range') ?? '')
  if (!match) return null
  const [first, last, length] = [Number(match[1]), Number(match[2]), Number(match[3])]
  return first === fromByte && last === length - 1 ? length : null
}
