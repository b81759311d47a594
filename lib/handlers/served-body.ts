import type { StoredEntry } from '../stores/store.js'
import { watchBody } from '../stores/watched-body.js'

/**
 * The stored entry as served, telling when its body has been read to its end or the read stopped (an
 * error, an abort, a range's early end): a 304 that makes the entry unstorable removes it only then,
 * as a body in a file or in chunk rows cannot be read once removed. The body is read as before:
 * a synchronous one stays synchronous (the body pump's turn budget applies).
 */
export class ServedBody {
  readonly entry: StoredEntry
  #reading = false
  #ended = false
  #pending: (() => void) | undefined

  constructor(stored: StoredEntry) {
    if (stored.body !== undefined) {
      this.entry = stored
      return
    }
    const { readRange } = stored
    this.entry = {
      ...fieldsOf(stored),
      readBody: () => this.#watched(() => stored.readBody()),
      // called as the store's method (a class's may use `this`)
      readRange:
        readRange &&
        ((startBytes, endBytes) => this.#watched(() => readRange.call(stored, startBytes, endBytes))),
    }
  }

  #watched(read: () => Iterable<Buffer> | AsyncIterable<Buffer>): Iterable<Buffer> | AsyncIterable<Buffer> {
    // from now on: a caller that pauses before its first read still keeps the entry
    this.#reading = true
    try {
      return watchBody(read(), { ended: () => this.#end() })
    } catch (error) {
      // the body could not be opened: nothing will read it
      this.#end()
      throw error
    }
  }

  /** Runs `action` once the body was read or the read stopped; at once if no read was started. */
  afterRead(action: () => void): void {
    if (!this.#reading || this.#ended) action()
    else this.#pending = action
  }

  #end(): void {
    this.#ended = true
    const pending = this.#pending
    this.#pending = undefined
    pending?.()
  }
}

/** Every field of a stored entry but its readers. */
type EntryFields = { [K in keyof Required<Omit<StoredEntry, 'readBody' | 'readRange'>>]: StoredEntry[K] }

/**
 * The entry's fields read one by one: a custom store's entries may keep them in getters of a class,
 * which a spread does not copy (the served copy had no headers).
 */
function fieldsOf(stored: StoredEntry): EntryFields {
  const { id, sizeBytes, body, statusCode, statusMessage, headers, requestTimeMs, responseTimeMs } = stored
  const { varyValues, varyKey, deleteAtMs, sharedCache, authorized, writeId } = stored
  return {
    id,
    sizeBytes,
    body,
    statusCode,
    statusMessage,
    headers,
    requestTimeMs,
    responseTimeMs,
    varyValues,
    varyKey,
    deleteAtMs,
    sharedCache,
    authorized,
    writeId,
  }
}
