import type { Dispatcher } from 'undici'
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

/** The part of `chunk` (found at `offset` in the body) that falls in `start`..`end` inclusive. */
function slicePart(chunk: Buffer, offset: number, start: number, end: number): Buffer | undefined {
  if (offset + chunk.length <= start || offset > end) return undefined
  return chunk.subarray(Math.max(0, start - offset), Math.min(chunk.length, end + 1 - offset))
}

const DONE: IteratorResult<Buffer> = { done: true, value: undefined }

// Explicit iterators, not generators: closing one before its first read must still close the stored
// body (a generator not yet started skips its cleanup), or a watcher waiting for the read never hears.
function sliceSync(chunks: Iterable<Buffer>, start: number, end: number): IterableIterator<Buffer> {
  const source = chunks[Symbol.iterator]()
  let offset = 0
  let closed = false
  const close = (): IteratorResult<Buffer> => {
    if (closed) return DONE
    closed = true
    source.return?.()
    return DONE
  }
  const iterator: IterableIterator<Buffer> = {
    [Symbol.iterator]: () => iterator,
    next: () => {
      while (!closed && offset <= end) {
        const step = source.next()
        if (step.done) closed = true
        else {
          const part = slicePart(step.value, offset, start, end)
          offset += step.value.length
          if (part) return { done: false, value: part }
        }
      }
      return close()
    },
    return: close,
  }
  return iterator
}

function sliceAsync(
  chunks: AsyncIterable<Buffer>,
  start: number,
  end: number,
): AsyncIterableIterator<Buffer> {
  const source = chunks[Symbol.asyncIterator]()
  let offset = 0
  let closed = false
  const close = async (): Promise<IteratorResult<Buffer>> => {
    if (closed) return DONE
    closed = true
    await source.return?.()
    return DONE
  }
  const iterator: AsyncIterableIterator<Buffer> = {
    [Symbol.asyncIterator]: () => iterator,
    next: async () => {
      while (!closed && offset <= end) {
        const step = await source.next()
        if (step.done) closed = true
        else {
          const part = slicePart(step.value, offset, start, end)
          offset += step.value.length
          if (part) return { done: false, value: part }
        }
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
  return Symbol.asyncIterator in chunks ? sliceAsync(chunks, start, end) : sliceSync(chunks, start, end)
}

/** Answers a caller from the cache (hits, freshened 304s, synthesized 504s). */
export function serve(
  downstream: Dispatcher.DispatchHandler,
  relay: RelayController,
  response: ServedResponse,
): void {
  const pump = new BodyPump(response.body ?? [], downstream, relay)
  relay.setSource(pump)
  try {
    relay.start(downstream, {})
    if (relay.aborted) return
    downstream.onResponseStart?.(relay, response.statusCode, response.headers, response.statusMessage)
  } catch (error) {
    pump.abort(error instanceof Error ? error : new Error(String(error)))
    return
  }
  if (!relay.aborted) pump.run()
}
