/** RedisEntryWriter: streams one body into Redis under its own key, then publishes it atomically. */
import type { RedisConnection } from './redis-connection.js'
import { APPEND_SCRIPT, COMMIT_SCRIPT } from './redis-scripts.js'
import type { EntryWriter } from './store.js'

/** A body being written expires this long after its last append, in ms (an abandoned writer's leftovers). */
export const PENDING_IDLE_TTL_MS = 10 * 60_000

/** What every writer of one store shares. */
export interface WriterContext {
  connection: RedisConnection
  maxEntryBytes: number
  chunkBytes: number
  /** The expiry of an entry useful until `deleteAtMs`, in ms from now. */
  ttlMs(deleteAtMs: number): number
  release(key: string, writer: RedisEntryWriter): void
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
}

/**
 * Buffers chunks (by reference) until chunkBytes are pending, then appends them to the body key.
 * A body that never reaches chunkBytes goes into the index hash at commit, in the same script.
 */
export class RedisEntryWriter implements EntryWriter {
  readonly #context: WriterContext
  readonly #target: WriterTarget
  #open = true
  #aborted = false
  #pending: Buffer[] = []
  #pendingBytes = 0
  #bodyBytes = 0
  #sentBytes = 0
  /** The appends sent or queued, in order; never rejects. */
  #appends: Promise<void> = Promise.resolve()

  constructor(context: WriterContext, target: WriterTarget) {
    this.#context = context
    this.#target = target
  }

  write(chunk: Buffer): Promise<void> | undefined {
    if (!this.#open || chunk.length === 0) return
    this.#bodyBytes += chunk.length
    if (this.#bodyBytes > this.#context.maxEntryBytes) {
      this.abort()
      return
    }
    this.#pending.push(chunk)
    this.#pendingBytes += chunk.length
    if (this.#pendingBytes >= this.#context.chunkBytes) return this.#flush()
  }

  commit(): Promise<void> | undefined {
    if (!this.#open) return
    const last = this.#takePending()
    this.#close()
    const inline = this.#sentBytes === 0
    return this.#appends.then(() => this.#publish(last, inline))
  }

  abort(): void {
    if (!this.#open) return
    this.#close()
    this.#aborted = true
    if (this.#sentBytes === 0) return
    const { connection } = this.#context
    this.#appends.then(() => connection.call('DEL', [this.#target.bodyKey])).catch(() => {})
  }

  /** Queues an append of the pending bytes after the ones already sent. */
  #flush(): Promise<void> {
    const data = this.#takePending()
    this.#sentBytes += data.length
    const expectedBytes = this.#sentBytes
    const appended = this.#appends.then(() => this.#append(data, expectedBytes))
    this.#appends = appended.catch(() => {})
    return appended
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
      this.abort()
      throw error
    }
    // Shorter: the body key was evicted meanwhile, so nothing can be stored.
    if (length !== expectedBytes) this.abort()
  }

  async #publish(last: Buffer, inline: boolean): Promise<void> {
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
