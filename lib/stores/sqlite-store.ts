/** SqliteStore: the default store, one SQLite file shared safely by several processes. */
import { join } from 'node:path'
import { checkOptionKeys, integerOption, type StoreOptions, stringOption } from './options.js'
import { type EntryDraft, type EvictionLimits, SqliteTables, type VariantRow } from './sqlite-schema.js'
import type { CacheStore, EntryMeta, EntryWriter, StoredEntry } from './store.js'

const STORE_NAME = 'SqliteStore'
const KIB = 1024
const MIB = 1024 * KIB
const GIB = 1024 * MIB

/** Options of `new SqliteStore()`; every size is in bytes. */
export interface SqliteStoreOptions {
  /** Database file, or ':memory:'; parent directories are created. Default: `defaultSqlitePath()`. */
  path?: string
  /**
   * Bytes kept, counting for each complete entry its body plus its metadata JSON; least recently used
   * entries are evicted beyond. Default 1 GiB.
   */
  maxBytes?: number
  /** Largest body stored, in bytes (also capped at maxBytes); larger ones are not stored. Default 256 MiB. */
  maxEntryBytes?: number
  /** Complete entries kept at most; least recently used ones are evicted beyond. Default 100 000. */
  maxEntries?: number
  /** Bytes gathered before one chunk row is written; smaller bodies are stored inline. Default 256 KiB, min 1 KiB. */
  chunkBytes?: number
}

/** The limits a SqliteStore runs with, options and defaults applied. */
export type SqliteStoreLimits = Required<Omit<SqliteStoreOptions, 'path'>>

export const SQLITE_STORE_DEFAULTS: Readonly<SqliteStoreLimits> = {
  maxBytes: GIB,
  maxEntryBytes: 256 * MIB,
  maxEntries: 100_000,
  chunkBytes: 256 * KIB,
}

/** A use of an entry is recorded at most this often, so hot hits do not write. */
export const TOUCH_INTERVAL_MS = 60_000

const OPTION_KEYS = ['path', 'maxBytes', 'maxEntryBytes', 'maxEntries', 'chunkBytes'] as const

/** `UNDICI_CACHE_PATH` when set, else `.cache/undici-cache/http-cache.db` under the current directory. */
export function defaultSqlitePath(): string {
  return process.env.UNDICI_CACHE_PATH || join(process.cwd(), '.cache', 'undici-cache', 'http-cache.db')
}

/**
 * An RFC 9111 cache store in one SQLite file (better-sqlite3, WAL). Bodies stream in and out in
 * chunk rows, never whole in memory. Several processes may share the file.
 * A delete(key) also drops the writes in progress under key in this instance (and chunked ones everywhere).
 */
export class SqliteStore implements CacheStore {
  readonly path: string
  readonly limits: Readonly<SqliteStoreLimits>
  readonly #tables: SqliteTables
  readonly #context: WriterContext
  readonly #writers = new Map<string, Set<SqliteEntryWriter>>()

  constructor(options?: SqliteStoreOptions) {
    const checked = checkOptionKeys(STORE_NAME, options, OPTION_KEYS)
    this.path = stringOption(STORE_NAME, checked, 'path', defaultSqlitePath())
    this.limits = readLimits(checked)
    this.#tables = new SqliteTables(this.path, Date.now())
    this.#context = {
      tables: this.#tables,
      entryLimitBytes: Math.min(this.limits.maxEntryBytes, this.limits.maxBytes),
      chunkBytes: this.limits.chunkBytes,
      eviction: { maxBytes: this.limits.maxBytes, maxEntries: this.limits.maxEntries },
      release: (key, writer) => this.#release(key, writer),
    }
  }

  get(key: string): StoredEntry[] {
    const nowMs = Date.now()
    return this.#tables.variants(key).map((row) => this.#toEntry(row, nowMs))
  }

  put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined {
    this.#tables.assertOpen()
    if (expectedSizeBytes !== undefined && expectedSizeBytes > this.#context.entryLimitBytes) return undefined
    const writer = new SqliteEntryWriter(this.#context, draftOf(key, meta))
    let writers = this.#writers.get(key)
    if (writers === undefined) {
      writers = new Set()
      this.#writers.set(key, writers)
    }
    writers.add(writer)
    return writer
  }

  update(key: string, id: StoredEntry['id'], meta: EntryMeta): void {
    this.#tables.assertOpen()
    if (typeof id === 'number') this.#tables.updateMeta(id, draftOf(key, meta))
  }

  delete(key: string): void {
    this.#tables.deleteKey(key)
    for (const writer of [...(this.#writers.get(key) ?? [])]) writer.abort()
  }

  close(): void {
    this.#tables.close()
  }

  /** Bytes (as counted for maxBytes) and number of the complete entries, across every process. */
  stats(): { totalBytes: number; entryCount: number } {
    const totals = this.#tables.totals()
    return { totalBytes: totals.bytes, entryCount: totals.entries }
  }

  #toEntry(row: VariantRow, nowMs: number): StoredEntry {
    if (nowMs - row.last_used_ms >= TOUCH_INTERVAL_MS) this.#tables.markUsed(row.id, nowMs)
    const meta = JSON.parse(row.meta) as EntryMeta
    const entry = { ...meta, id: row.id, sizeBytes: row.body_bytes }
    const { body } = row
    if (body !== null) return { ...entry, body, readBody: () => (body.length > 0 ? [body] : []) }
    const tables = this.#tables
    return { ...entry, readBody: () => readChunks(tables, row.id, row.body_bytes) }
  }

  #release(key: string, writer: SqliteEntryWriter): void {
    const writers = this.#writers.get(key)
    writers?.delete(writer)
    if (writers?.size === 0) this.#writers.delete(key)
  }
}

function readLimits(options: StoreOptions): SqliteStoreLimits {
  const bytes = (name: string, defaultValue: number, min = 1) =>
    integerOption(STORE_NAME, options, name, { defaultValue, min, unit: 'bytes' })
  const defaults = SQLITE_STORE_DEFAULTS
  return {
    maxBytes: bytes('maxBytes', defaults.maxBytes),
    maxEntryBytes: bytes('maxEntryBytes', defaults.maxEntryBytes),
    maxEntries: integerOption(STORE_NAME, options, 'maxEntries', {
      defaultValue: defaults.maxEntries,
      min: 1,
      unit: 'entries',
    }),
    chunkBytes: bytes('chunkBytes', defaults.chunkBytes, KIB),
  }
}

/** The metadata to store: `meta` without the fields of a StoredEntry (callers may pass one back). */
function draftOf(key: string, meta: EntryMeta): EntryDraft {
  const { id: _id, sizeBytes: _sizeBytes, body: _body, readBody: _readBody, ...rest } = meta as StoredEntry
  const metaJson = JSON.stringify(rest)
  const metaBytes = Buffer.byteLength(metaJson)
  return { key, varyKey: meta.varyKey, metaJson, metaBytes, deleteAtMs: meta.deleteAtMs }
}

/** Reads a chunked body one row per step; throws when a row vanished (entry replaced or evicted). */
function* readChunks(tables: SqliteTables, entryId: number, sizeBytes: number): Generator<Buffer> {
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

/** What every writer of one store shares. */
interface WriterContext {
  tables: SqliteTables
  entryLimitBytes: number
  chunkBytes: number
  eviction: EvictionLimits
  release(key: string, writer: SqliteEntryWriter): void
}

/**
 * Buffers chunks (by reference) until chunkBytes are pending, then writes them as one chunk row.
 * A body that never reaches chunkBytes goes inline into the entry row at commit.
 */
class SqliteEntryWriter implements EntryWriter {
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

  /** Removes the incomplete row; a failure leaves it to the stale-row cleanup of a later open. */
  #discardRows(): void {
    if (this.#entryId === undefined) return
    try {
      this.#context.tables.discard(this.#entryId)
    } catch {
      // closed store or busy database: nothing more to do here
    }
  }
}
