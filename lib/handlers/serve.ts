import type { Dispatcher } from 'undici'
import { asError } from '../diagnostics.js'
import type { StoredEntry } from '../stores/store.js'
import { BodyPump } from './body-pump.js'
import type { RelayController } from './relay-controller.js'
import type { OutgoingHeaders } from './response-headers.js'

export interface ServedResponse {
  statusCode: number
  statusMessage: string
  headers: OutgoingHeaders
  /** Undefined for a response without a body (HEAD, synthesized errors). */
  body?: Iterable<Buffer> | AsyncIterable<Buffer>
}

/** The stored body as chunks: the one-piece fast path when the store has it. */
export function entryBody(entry: StoredEntry): Iterable<Buffer> | AsyncIterable<Buffer> {
  if (entry.body) return entry.body.length === 0 ? [] : [entry.body]
  return entry.readBody()
}

/** Cuts bytes `start`..`end` (inclusive) out of a body read piece by piece. */
class Slicer {
  readonly #start: number
  readonly #end: number
  #offset = 0

  constructor(start: number, end: number) {
    this.#start = start
    this.#end = end
  }

  /** Past `end`: nothing more to read. */
  get full(): boolean {
    return this.#offset > this.#end
  }

  /** The part of the next piece that falls in the range, if any. */
  cut(piece: Buffer): Buffer | undefined {
    const offset = this.#offset
    this.#offset += piece.length
    if (offset + piece.length <= this.#start || offset > this.#end) return undefined
    return piece.subarray(Math.max(0, this.#start - offset), Math.min(piece.length, this.#end + 1 - offset))
  }
}

const DONE: IteratorResult<Buffer> = { done: true, value: undefined }

// Explicit iterators, not generators: closing one before its first read must still close the stored
// body (a generator not yet started skips its cleanup), or a watcher waiting for the read never hears.
function sliceSync(chunks: Iterable<Buffer>, slicer: Slicer): IterableIterator<Buffer> {
  const source = chunks[Symbol.iterator]()
  let closed = false
  const close = (): IteratorResult<Buffer> => {
    if (!closed) {
      closed = true
      source.return?.()
    }
    return DONE
  }
  const iterator: IterableIterator<Buffer> = {
    [Symbol.iterator]: () => iterator,
    next: () => {
      while (!closed && !slicer.full) {
        const step = source.next()
        closed = step.done === true
        const part = step.done ? undefined : slicer.cut(step.value)
        if (part) return { done: false, value: part }
      }
      return close()
    },
    return: close,
  }
  return iterator
}

function sliceAsync(chunks: AsyncIterable<Buffer>, slicer: Slicer): AsyncIterableIterator<Buffer> {
  const source = chunks[Symbol.asyncIterator]()
  let closed = false
  const close = async (): Promise<IteratorResult<Buffer>> => {
    if (!closed) {
      closed = true
      await source.return?.()
    }
    return DONE
  }
  const iterator: AsyncIterableIterator<Buffer> = {
    [Symbol.asyncIterator]: () => iterator,
    next: async () => {
      while (!closed && !slicer.full) {
        const step = await source.next()
        closed = step.done === true
        const part = step.done ? undefined : slicer.cut(step.value)
        if (part) return { done: false, value: part }
      }
      return close()
    },
    return: close,
  }
  return iterator
}

/** Bytes `start`..`end` (inclusive) of the stored body, reading no further than `end`. */
export function rangeBody(
  entry: StoredEntry,
  start: number,
  end: number,
): Iterable<Buffer> | AsyncIterable<Buffer> {
  if (entry.body) return [entry.body.subarray(start, end + 1)]
  const chunks = entry.readBody()
  const slicer = new Slicer(start, end)
  return Symbol.asyncIterator in chunks ? sliceAsync(chunks, slicer) : sliceSync(chunks, slicer)
}

/**
 * Answers a caller from the cache (hits, freshened 304s, synthesized 504s). The response starts on a
 * microtask, as undici's never starts within dispatch(): a signal aborted right after `request()` or
 * `stream()` returns still ends the request with its reason.
 */
export function serve(
  downstream: Dispatcher.DispatchHandler,
  relay: RelayController,
  response: ServedResponse,
): void {
  const pump = new BodyPump(response.body ?? [], downstream, relay)
  relay.setSource(pump)
  try {
    relay.start(downstream, {})
  } catch (error) {
    pump.abort(asError(error))
    return
  }
  queueMicrotask(() => respond(downstream, relay, response, pump))
}

function respond(
  downstream: Dispatcher.DispatchHandler,
  relay: RelayController,
  response: ServedResponse,
  pump: BodyPump,
): void {
  if (relay.aborted) return
  try {
    relay.respond(downstream, response.statusCode, response.headers, response.statusMessage)
  } catch (error) {
    pump.abort(asError(error))
    return
  }
  if (!relay.aborted) pump.run()
}
