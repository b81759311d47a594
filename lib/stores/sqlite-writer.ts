/** How SqliteStore streams a body in (chunk rows, then one commit) and back out (one row a step). */

import type { CommitQueue } from './sqlite-commit-queue.js'
import type { EntryDraft, EvictionLimits, SqliteTables } from './sqlite-tables.js'
import type { EntryMeta, EntryWriter } from './store.js'
import { metaOnly } from './writers.js'

/** What every writer of one store shares. */
export interface WriterContext {
  tables: SqliteTables
  entryLimitBytes: number
  chunkBytes: number
  eviction: EvictionLimits
  commits: CommitQueue
  release(key: string, writer: SqliteEntryWriter): void
}

/** The metadata to store: `meta` without the fields of a StoredEntry (callers may pass one back). */
export function draftOf(key: string, meta: EntryMeta): EntryDraft {
  const metaJson = JSON.stringify(metaOnly(meta))
  const metaBytes = Buffer.byteLength(metaJson)
  return { key, varyKey: meta.varyKey, metaJson, metaBytes, deleteAtMs: meta.deleteAtMs }
}

/** Reads a chunked body one row per step; throws when a row vanished (entry replaced or evicted). */
export function* readChunks(tables: SqliteTables, entryId: number, sizeBytes: number): Generator<Buffer> {
  let readBytes = 0
  for (let seq = 0; readBytes < sizeBytes; seq++) {
    const data = tables.chunk(entryId, seq)
    if (data === undefined) {
      throw new Error(`undici-cache: body of entry ${entryId} is gone (replaced or evicted while read)`)
    }
    readBytes += data.length
    yield data
  }
}

/**
 * Buffers chunks (by reference) until chunkBytes are pending, then writes them as one chunk row.
 * A body that never reaches chunkBytes goes inline into the entry row at commit. A failed write
 * (disk full, busy past the timeout) drops the entry and throws.
 */
export class SqliteEntryWriter implements EntryWriter {
  readonly #context: WriterContext
  readonly #draft: EntryDraft
  #open = true
  #pending: Buffer[] = []
  #pendingBytes = 0
  #bodyBytes = 0
  #entryId: number | undefined
  #nextSeq = 0

  constructor(context: WriterContext, draft: EntryDraft) {
    this.#context = context
    this.#draft = draft
  }

  write(chunk: Buffer): void {
    if (!this.#open) return
    this.#bodyBytes += chunk.length
    if (this.#bodyBytes > this.#context.entryLimitBytes) {
      this.abort()
      return
    }
    this.#pending.push(chunk)
    this.#pendingBytes += chunk.length
    if (this.#pendingBytes >= this.#context.chunkBytes) this.#flush()
  }

  commit(): void {
    if (!this.#open) return
    const args = { ...this.#chunkArgs(), bodyBytes: this.#bodyBytes, limits: this.#context.eviction }
    this.#close()
    try {
      this.#context.tables.commit(args)
    } catch (error) {
      this.#discardRows()
      throw error
    }
  }

  /** Like commit(), but may share one transaction with the other commits of this turn. */
  commitSoon(): Promise<void> {
    if (!this.#open) return Promise.resolve()
    const args = { ...this.#chunkArgs(), bodyBytes: this.#bodyBytes, limits: this.#context.eviction }
    this.#close()
    return this.#context.commits.commit(args).catch((error: unknown) => {
      this.#discardRows()
      throw error
    })
  }

  abort(): void {
    if (!this.#open) return
    this.#close()
    this.#discardRows()
  }

  #flush(): void {
    try {
      this.#entryId = this.#context.tables.appendChunk(this.#chunkArgs())
    } catch (error) {
      this.abort()
      throw error
    }
    if (this.#entryId === undefined) this.abort()
    else this.#nextSeq += 1
  }

  /** Takes the pending chunks as one buffer (no copy when there is just one). */
  #chunkArgs() {
    const [first] = this.#pending
    const data =
      this.#pending.length === 1 && first ? first : Buffer.concat(this.#pending, this.#pendingBytes)
    this.#pending = []
    this.#pendingBytes = 0
    return { draft: this.#draft, entryId: this.#entryId, seq: this.#nextSeq, data, nowMs: Date.now() }
  }

  #close(): void {
    this.#open = false
    this.#pending = []
    this.#context.release(this.#draft.key, this)
  }

  /** Removes the incomplete row, if one was written (a failure is retried by the store's sweep). */
  #discardRows(): void {
    if (this.#entryId !== undefined) this.#context.tables.discard(this.#entryId)
  }
}
