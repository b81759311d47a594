/** How SqliteStore streams a body in (a file or chunk rows, then one commit) and back out (one row a step). */
import { closeSync } from 'node:fs'
import type { BodyFiles } from './sqlite-body-files.js'
import type { CommitQueue } from './sqlite-commit-queue.js'
import type { CommitArgs, EntryDraft, EvictionLimits } from './sqlite-rows.js'
import type { SqliteTables } from './sqlite-tables.js'
import type { EntryMeta, EntryWriter } from './store.js'
import { metaOnly } from './writers.js'

/** What every writer of one store shares. */
export interface WriterContext {
  tables: SqliteTables
  entryLimitBytes: number
  chunkBytes: number
  eviction: EvictionLimits
  commits: CommitQueue
  /** Where bodies of one chunk or more go; undefined: into chunk rows. */
  bodyFiles: BodyFiles | undefined
  release(key: string, writer: SqliteEntryWriter): void
  /** Told when a queued commit failed (the entry was not stored). */
  commitFailed(error: unknown): void
}

/** A writer of a body file tells the database it is alive at most this often (see sqlite-liveness.ts). */
export const FILE_WRITER_MARK_MS = 1000

const EMPTY = Buffer.alloc(0)

/** The metadata to store: `meta` without the fields of a StoredEntry (callers may pass one back). */
export function draftOf(key: string, meta: EntryMeta): EntryDraft {
  const metaJson = JSON.stringify(metaOnly(meta))
  const metaBytes = Buffer.byteLength(metaJson)
  return {
    key,
    varyKey: meta.varyKey,
    metaJson,
    metaBytes,
    deleteAtMs: meta.deleteAtMs,
    requestTimeMs: meta.requestTimeMs,
  }
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
 * Buffers chunks (by reference) until chunkBytes are pending, then writes them to the entry's body file
 * (or, without body files, as one chunk row). A body that never reaches chunkBytes goes inline into the
 * entry row at commit. A failed write (disk full, busy past the timeout) drops the entry and throws.
 */
export class SqliteEntryWriter implements EntryWriter {
  readonly #context: WriterContext
  readonly #draft: EntryDraft
  #open = true
  /** Past the entry size limit: commit() stores nothing. */
  refused = false
  #pending: Buffer[] = []
  #pendingBytes = 0
  #bodyBytes = 0
  #entryId: number | undefined
  #nextSeq = 0
  /** The open body file, once the body outgrew one chunk (with body files). */
  #fd: number | undefined
  #markedMs = 0

  constructor(context: WriterContext, draft: EntryDraft) {
    this.#context = context
    this.#draft = draft
  }

  write(chunk: Buffer): void {
    if (!this.#open) return
    this.#bodyBytes += chunk.length
    if (this.#bodyBytes > this.#context.entryLimitBytes) {
      this.refused = true
      this.abort()
      return
    }
    this.#pending.push(chunk)
    this.#pendingBytes += chunk.length
    if (this.#pendingBytes >= this.#context.chunkBytes) this.#flush()
  }

  commit(): void {
    if (!this.#open) return
    const args = this.#commitArgs()
    this.#close()
    try {
      // Queued commits of this key are older: they go first, so this one stays the newest.
      this.#context.commits.flushKey(this.#draft.key)
      this.#context.tables.commit(args)
    } catch (error) {
      this.#discardRows()
      throw error
    }
  }

  /**
   * Like commit(), but queued to share one transaction with the commits after it (see CommitQueue):
   * resolved once this process reads the entry, which other processes see when the queue is committed.
   */
  commitSoon(): Promise<void> {
    if (!this.#open) return Promise.resolve()
    let args: CommitArgs
    try {
      args = this.#commitArgs()
    } catch (error) {
      return Promise.reject(error)
    }
    this.#close()
    this.#context.commits.commit(args, (error) => {
      this.#discardRows()
      this.#context.commitFailed(error)
    })
    return Promise.resolve()
  }

  abort(): void {
    if (!this.#open) return
    this.#close()
    this.#discardRows()
  }

  /** Writes the pending chunks; stops (storing nothing) when the entry's row was removed meanwhile. */
  #flush(): void {
    let kept: boolean
    try {
      kept = this.#context.bodyFiles ? this.#flushToFile(this.#context.bodyFiles) : this.#flushToRow()
    } catch (error) {
      this.abort()
      throw error
    }
    if (kept) this.#nextSeq += 1
    else this.abort()
  }

  #flushToRow(): boolean {
    this.#entryId = this.#context.tables.appendChunk(this.#chunkArgs())
    return this.#entryId !== undefined
  }

  /** Appends the pending chunks to the body file, creating the incomplete row and the file first. */
  #flushToFile(files: BodyFiles): boolean {
    const { tables } = this.#context
    tables.assertOpen()
    const nowMs = Date.now()
    if (this.#entryId === undefined) {
      const args = { draft: this.#draft, entryId: undefined, seq: 0, data: EMPTY, nowMs }
      this.#entryId = tables.beginFileEntry(args)
      this.#fd = files.create(this.#entryId)
      this.#markedMs = nowMs
    } else if (nowMs - this.#markedMs >= FILE_WRITER_MARK_MS) {
      this.#markedMs = nowMs
      if (!tables.markWritten(this.#entryId, nowMs)) return false
    }
    files.append(this.#fd as number, this.#takePending())
    return true
  }

  /** The end of the body: the last chunk or inline body, or (with a body file) the file's last bytes. */
  #commitArgs(): CommitArgs {
    const inFile = this.#fd !== undefined
    if (inFile) this.#finishFile()
    const { draft, entryId, seq, data, nowMs } = this.#chunkArgs()
    return {
      draft,
      entryId,
      seq,
      data,
      nowMs,
      bodyBytes: this.#bodyBytes,
      limits: this.#context.eviction,
      inFile,
    }
  }

  /** Writes the pending chunks and closes the body file; a failure drops the entry and throws. */
  #finishFile(): void {
    const fd = this.#fd as number
    try {
      this.#context.bodyFiles?.append(fd, this.#takePending())
      this.#fd = undefined
      closeSync(fd)
    } catch (error) {
      this.abort()
      throw error
    }
  }

  #takePending(): Buffer[] {
    const pending = this.#pending
    this.#pending = []
    this.#pendingBytes = 0
    return pending
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

  /** Removes the body file and the incomplete row, if written (a failed row removal is retried by the sweep). */
  #discardRows(): void {
    if (this.#fd !== undefined) closeQuietly(this.#fd)
    this.#fd = undefined
    if (this.#entryId === undefined) return
    this.#context.bodyFiles?.remove([this.#entryId])
    this.#context.tables.discard(this.#entryId)
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd)
  } catch {}
}
