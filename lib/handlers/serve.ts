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

/** A body (or range) that is not the length its entry says: the store broke its contract (a read that fails). */
function wrongLength(expectedBytes: number, length: string): Error {
  return new Error(`undici-cache: the stored body of ${expectedBytes} bytes read ${length}`)
}

/**
 * The stored body as chunks: the one-piece fast path when the store has it. A body that ends short of
 * `sizeBytes` or runs past it fails as a read does (the rest then comes from the origin, or the
 * caller gets an error), never ending the response short or long.
 */
export function entryBody(entry: StoredEntry): Iterable<Buffer> | AsyncIterable<Buffer> {
  if (entry.body) {
    if (entry.body.length !== entry.sizeBytes) throw wrongLength(entry.sizeBytes, `${entry.body.length}`)
    return entry.body.length === 0 ? [] : [entry.body]
  }
  return through(entry.readBody(), new Counted(entry.sizeBytes))
}

/** What passes a stored body on, piece by piece: all of it, or a part. */
interface Cutter {
  /** Nothing more to read. */
  readonly full: boolean
  /** The part of the next piece to pass on, if any. */
  cut(piece: Buffer): Buffer | undefined
  /** The body has ended: throws if it ended short. */
  ended(): void
}

/** All of what is read, checked against the length it should have (the entry's, or a range's). */
class Counted implements Cutter {
  readonly full = false
  readonly #expectedBytes: number
  #readBytes = 0

  constructor(expectedBytes: number) {
    this.#expectedBytes = expectedBytes
  }

  cut(piece: Buffer): Buffer {
    this.#readBytes += piece.length
    if (this.#readBytes > this.#expectedBytes) throw wrongLength(this.#expectedBytes, 'more')
    return piece
  }

  ended(): void {
    if (this.#readBytes < this.#expectedBytes) throw wrongLength(this.#expectedBytes, `${this.#readBytes}`)
  }
}

/** Cuts bytes `start`..`end` (inclusive) out of a body read piece by piece. */
class Slicer implements Cutter {
  readonly #sizeBytes: number
  readonly #start: number
  readonly #end: number
  #offset = 0

  constructor(sizeBytes: number, start: number, end: number) {
    this.#sizeBytes = sizeBytes
    this.#start = start
    this.#end = end
  }

  /** Past `end`: nothing more to read. */
  get full(): boolean {
    return this.#offset > this.#end
  }

  cut(piece: Buffer): Buffer | undefined {
    const offset = this.#offset
    this.#offset += piece.length
    if (offset + piece.length <= this.#start || offset > this.#end) return undefined
    return piece.subarray(Math.max(0, this.#start - offset), Math.min(piece.length, this.#end + 1 - offset))
  }

  ended(): void {
    if (this.#offset <= this.#end) throw wrongLength(this.#sizeBytes, `${this.#offset}`)
  }
}

const DONE: IteratorResult<Buffer> = { done: true, value: undefined }

function through(
  chunks: Iterable<Buffer> | AsyncIterable<Buffer>,
  cutter: Cutter,
): Iterable<Buffer> | AsyncIterable<Buffer> {
  return Symbol.asyncIterator in chunks ? throughAsync(chunks, cutter) : throughSync(chunks, cutter)
}

// Explicit iterators, not generators: closing one before its first read must still close the stored
// body (a generator not yet started skips its cleanup), or a watcher waiting for the read never hears.
function throughSync(chunks: Iterable<Buffer>, cutter: Cutter): IterableIterator<Buffer> {
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
      while (!closed && !cutter.full) {
        const step = source.next()
        closed = step.done === true
        if (step.done) cutter.ended()
        const part = step.done ? undefined : cutter.cut(step.value)
        if (part) return { done: false, value: part }
      }
      return close()
    },
    return: close,
  }
  return iterator
}

function throughAsync(chunks: AsyncIterable<Buffer>, cutter: Cutter): AsyncIterableIterator<Buffer> {
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
      while (!closed && !cutter.full) {
        const step = await source.next()
        closed = step.done === true
        if (step.done) cutter.ended()
        const part = step.done ? undefined : cutter.cut(step.value)
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
  if (entry.body) {
    if (entry.body.length !== entry.sizeBytes) throw wrongLength(entry.sizeBytes, `${entry.body.length}`)
    return [entry.body.subarray(start, end + 1)]
  }
  // a store that reads from an offset reads only the range (a body file: no read before it)
  if (entry.readRange) return through(entry.readRange(start, end + 1), new Counted(end + 1 - start))
  return through(entry.readBody(), new Slicer(entry.sizeBytes, start, end))
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
