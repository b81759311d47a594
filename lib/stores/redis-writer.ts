/** RedisEntryWriter: streams one body into Redis under its own key, then publishes it atomically. */
import type { RedisConnection } from './redis-connection.js'
import { APPEND_SCRIPT, COMMIT_SCRIPT } from './redis-scripts.js'
import type { EntryWriter } from './store.js'

/** A body being written expires this long after its last append, in ms (an abandoned writer's leftovers). */
export const PENDING_IDLE_TTL_MS = 10 * 60_000

/**
 * Appends sent and not yet answered, in bytes, before a write waits for the oldest answer: Redis runs one
 * connection's commands in order, so a far Redis costs a round trip per window rather than per append.
 */
export const APPEND_WINDOW_BYTES = 1024 * 1024

/** What every writer of one store shares. */
export interface WriterContext {
  connection: RedisConnection
  maxEntryBytes: number
  chunkBytes: number
  /** The expiry of an entry useful until `deleteAtMs`, in ms from now. */
  ttlMs(deleteAtMs: number): number
  release(key: string, writer: RedisEntryWriter): void
  /** Notes a command in flight (a commit, a delete) that close() lets finish first. */
  track(inFlight: Promise<unknown>): void
}

/** Where one variant goes: its primary key, index hash, own body key and metadata. */
export interface WriterTarget {
  key: string
  indexKey: string
  /** Unique to this writer, so concurrent writers of one key never mix their bytes. */
  id: string
  bodyKey: string
  varyKey: string
  metaJson: string
  deleteAtMs: number
  /** The key's deletion mark its request's lookup saw ('' for none, '-' when unknown): see COMMIT_SCRIPT. */
  deletionsSeen: string
}

/**
 * Buffers chunks (by reference) until chunkBytes are pending, then appends them to the body key,
 * up to APPEND_WINDOW_BYTES ahead of Redis's answers. Each answer's length shows a gap (an append
 * failed, or the key was evicted): the entry is then dropped and commit() rejects.
 * A body that never reaches chunkBytes goes into the index hash at commit, in the same script.
 */
export class RedisEntryWriter implements EntryWriter {
  readonly #context: WriterContext
  readonly #target: WriterTarget
  #open = true
  /** Past the entry size limit: commit() stores nothing. */
  refused = false
  #aborted = false
  #pending: Buffer[] = []
  #pendingBytes = 0
  #bodyBytes = 0
  #sentBytes = 0
  /** Settles once every append sent so far has its answer; never rejects. */
  #appends: Promise<void> = Promise.resolve()
  /** The appends awaiting their answer, oldest first, and their bytes. */
  readonly #unanswered: Promise<void>[] = []
  #unansweredBytes = 0
  /** Why the entry cannot be stored (an append failed or left a gap): commit() rejects with it. */
  #failure: Error | undefined

  constructor(context: WriterContext, target: WriterTarget) {
    this.#context = context
    this.#target = target
  }

  write(chunk: Buffer): Promise<void> | undefined {
    // a failure of an append already answered is told to the next write
    if (this.#failure) return Promise.reject(this.#failure)
    if (!this.#open || chunk.length === 0) return
    this.#bodyBytes += chunk.length
    if (this.#bodyBytes > this.#context.maxEntryBytes) {
      this.refused = true
      this.abort()
      return
    }
    this.#pending.push(chunk)
    this.#pendingBytes += chunk.length
    if (this.#pendingBytes >= this.#context.chunkBytes) return this.#flush()
  }

  commit(): Promise<void> | undefined {
    if (this.#failure) return Promise.reject(this.#failure)
    if (!this.#open) return
    const last = this.#takePending()
    this.#close()
    const inline = this.#sentBytes === 0
    const committed = this.#appends.then(() => this.#publish(last, inline))
    this.#context.track(committed)
    return committed
  }

  abort(): void {
    if (!this.#open) return
    this.#close()
    this.#dropBody()
  }

  /**
   * Sends an append of the pending bytes without waiting for the answers to those before it; past the
   * window, the caller is given the oldest unanswered append to wait for (it rejects if that one failed).
   */
  #flush(): Promise<void> | undefined {
    try {
      this.#context.connection.assertReachable()
    } catch (error) {
      this.#fail(error as Error)
      return Promise.reject(error)
    }
    const data = this.#takePending()
    this.#sentBytes += data.length
    const appended = this.#append(data, this.#sentBytes)
    this.#unanswered.push(appended)
    this.#unansweredBytes += data.length
    const answered = () => {
      this.#unanswered.shift()
      this.#unansweredBytes -= data.length
    }
    const settled = appended.then(answered, answered)
    this.#appends = this.#appends.then(() => settled)
    // the first append waits for its answer: a script Redis did not know yet (NOSCRIPT) is sent again,
    // which would put it after the appends sent meanwhile
    const first = this.#sentBytes === data.length
    return first || this.#unansweredBytes > APPEND_WINDOW_BYTES ? this.#unanswered[0] : undefined
  }

  async #append(data: Buffer, expectedBytes: number): Promise<void> {
    if (this.#aborted) return
    let length: unknown
    try {
      length = await this.#context.connection.run(
        APPEND_SCRIPT,
        [this.#target.bodyKey],
        [data, PENDING_IDLE_TTL_MS],
      )
    } catch (error) {
      this.#fail(error as Error)
      throw error
    }
    // Another length: an append before it failed, or the body key was evicted: nothing can be stored.
    if (length !== expectedBytes && !this.#aborted) {
      this.#fail(
        new Error(`undici-cache: Redis body ${this.#target.bodyKey} has a gap (evicted while written)`),
      )
    }
  }

  /** Also while a commit waits for the appends: it then rejects instead of publishing. */
  #fail(error: Error): void {
    this.#failure ??= error
    if (this.#open) this.#close()
    this.#dropBody()
  }

  /** Deletes what was appended, once every append sent has its answer (once). */
  #dropBody(): void {
    if (this.#aborted) return
    this.#aborted = true
    if (this.#sentBytes === 0) return
    const { connection } = this.#context
    const dropped = this.#appends.then(() => connection.tidy('DEL', [this.#target.bodyKey]))
    this.#context.track(dropped.catch(() => {}))
  }

  async #publish(last: Buffer, inline: boolean): Promise<void> {
    if (this.#failure) throw this.#failure
    if (this.#aborted) return
    const target = this.#target
    await this.#context.connection.run(
      COMMIT_SCRIPT,
      [target.indexKey, target.bodyKey],
      [
        target.id,
        target.varyKey,
        target.metaJson,
        this.#bodyBytes,
        this.#context.ttlMs(target.deleteAtMs),
        inline ? '1' : '0',
        last,
        target.deletionsSeen,
      ],
    )
  }

  /** Takes the pending chunks as one buffer (no copy when there is just one). */
  #takePending(): Buffer {
    const [first] = this.#pending
    const data =
      this.#pending.length === 1 && first ? first : Buffer.concat(this.#pending, this.#pendingBytes)
    this.#pending = []
    this.#pendingBytes = 0
    return data
  }

  #close(): void {
    this.#open = false
    this.#pending = []
    this.#pendingBytes = 0
    this.#context.release(this.#target.key, this)
  }
}
