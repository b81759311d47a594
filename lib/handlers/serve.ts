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

function* sliceSync(chunks: Iterable<Buffer>, start: number, end: number): Generator<Buffer> {
  let offset = 0
  for (const chunk of chunks) {
    const part = slicePart(chunk, offset, start, end)
    if (part) yield part
    offset += chunk.length
    if (offset > end) return
  }
}

async function* sliceAsync(
  chunks: AsyncIterable<Buffer>,
  start: number,
  end: number,
): AsyncGenerator<Buffer> {
  let offset = 0
  for await (const chunk of chunks) {
    const part = slicePart(chunk, offset, start, end)
    if (part) yield part
    offset += chunk.length
    if (offset > end) return
  }
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
