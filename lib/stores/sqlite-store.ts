/** SqliteStore: the default store, one SQLite file shared safely by several processes. */
import { reportStoreError } from '../diagnostics.js'
import { LruMap } from './lru-map.js'
import { type BodyFiles, isLostBody, realFile } from './sqlite-body-files.js'
import { CommitQueue } from './sqlite-commit-queue.js'
import { DataVersion } from './sqlite-data-version.js'
import { HotTier } from './sqlite-hot-tier.js'
import { KeyFilter } from './sqlite-key-filter.js'
import { mayPass, openTables, unusable } from './sqlite-open.js'
import {
  type OnCorrupt,
  readSqliteOptions,
  type SqliteStoreLimits,
  type SqliteStoreOptions,
} from './sqlite-options.js'
import { isTransient } from './sqlite-schema.js'
import type { VariantRow } from './sqlite-statements.js'
import type { SqliteTables } from './sqlite-tables.js'
import { draftOf, readChunks, SqliteEntryWriter, type WriterContext } from './sqlite-writer.js'
import type { CacheStore, EntryMeta, EntryWriter, StoredEntry } from './store.js'
import { WritersInProgress } from './writers.js'

export {
  defaultSqlitePath,
  type OnCorrupt,
  SQLITE_STORE_DEFAULTS,
  type SqliteStoreLimits,
  type SqliteStoreOptions,
} from './sqlite-options.js'

/** A use of an entry is recorded at most this often, so hot hits do not write. */
export const TOUCH_INTERVAL_MS = 60_000

/** Entries whose last use this store remembers (see #markedMs). */
const MARKS_KEPT = 16_384

/** A store whose open failed for a reason that may pass tries again at most this often (see mayPass). */
export const REOPEN_INTERVAL_MS = 10_000

/** Entries (and, separately, killed writers' rows) one sweep removes at most. */
export const SWEEP_MAX_ROWS = 200

/**
 * An RFC 9111 cache store in one SQLite file (better-sqlite3, WAL). Bodies stream in and out in
 * pieces (inline, chunk rows or a body file), never needing to be whole in memory; the hot tier
 * keeps recently read ones, each key at most a quarter of `hotBytes`. Several processes may share the file.
 * A delete(key) also drops the writes in progress under key in this instance (and chunked ones everywhere).
 *
 * The constructor throws only on bad options. A file it cannot use (corrupt, not SQLite, read-only,
 * newer schema, unwritable directory) leaves the store failed: `failure` says why, a warning is emitted
 * once, and get, put, update, delete, sweep and stats throw that error, so the interceptor passes
 * requests through to the origin. When the cause may pass (a lock held, a full disk: see mayPass),
 * those calls open the file again, at most every REOPEN_INTERVAL_MS and without waiting for a lock.
 */
export class SqliteStore implements CacheStore {
  readonly path: string
  readonly limits: Readonly<SqliteStoreLimits>
  readonly sweepIntervalMs: number
  readonly onCorrupt: OnCorrupt
  readonly #hotBytes: number
  readonly #bodyFiles: boolean
  #corruptCopyPath: string | undefined
  #failure: Error | undefined
  /** When the last open was tried (see #reopenIfDue). */
  #openedMs: number
  /** The open tables and what writers share; undefined when the store failed. */
  #context: WriterContext | undefined
  readonly #writers = new WritersInProgress<SqliteEntryWriter>()
  #sweepTimer: NodeJS.Timeout | undefined
  #hot: HotTier | undefined
  #keys: KeyFilter | undefined
  /**
   * When this store last recorded a use of each of the entries it last did (or their time in the file,
   * if later): a use sets a bit and leaves the entry's time as it was, so the time alone would record
   * every hit after the first minute.
   */
  readonly #markedMs = new LruMap<number, number>(MARKS_KEPT)
  #closed = false

  constructor(options?: SqliteStoreOptions) {
    const { path, sweepIntervalMs, onCorrupt, hotBytes, bodyFiles, ...limits } = readSqliteOptions(options)
    this.path = path
    this.limits = limits
    this.sweepIntervalMs = sweepIntervalMs
    this.onCorrupt = onCorrupt
    this.#hotBytes = hotBytes
    this.#bodyFiles = bodyFiles
    this.#openedMs = Date.now()
    this.#open(true)
  }

  /** Where a corrupt file was moved when `onCorrupt: 'recreate'` replaced it. */
  get corruptCopyPath(): string | undefined {
    return this.#corruptCopyPath
  }

  /** Why the file could not be opened; undefined when the store works (again, after a passing fault). */
  get failure(): Error | undefined {
    return this.#failure
  }

  /**
   * Sets up the hot tier, the key filter and the sweep around newly opened tables. They read the file
   * too: when that fails, all of it is closed and the store stays failed.
   */
  #attach(tables: SqliteTables): void {
    const file = this.path === ':memory:' ? undefined : realFile(this.path)
    let hot: HotTier | undefined
    let keys: KeyFilter | undefined
    try {
      const dataVersion = new DataVersion(() => tables.dataVersion())
      if (this.#hotBytes > 0) hot = new HotTier(this.#hotBytes, TOUCH_INTERVAL_MS, dataVersion, file)
      keys = new KeyFilter(tables.keyReads(), dataVersion, tables.totals().entries, file)
    } catch (error) {
      hot?.close()
      keys?.close()
      tables.close()
      this.#failed(unusable(this.path, error))
      return
    }
    const filter = keys
    tables.onRemoved = (id) => hot?.forgetEntry(id)
    tables.onWritten = (inserted) => {
      hot?.wrote()
      filter.wrote(inserted)
    }
    this.#failure = undefined
    this.#context = this.#writerContext(tables, this.#bodyFiles, file)
    this.#hot = hot
    this.#keys = keys
    if (this.sweepIntervalMs > 0) {
      this.#sweepTimer = setInterval(() => this.sweep(), this.sweepIntervalMs).unref()
    }
  }

  /** Opens the file; a failure is reported on every try (the warning once per store). */
  #open(waitForLocks: boolean): void {
    const opened = openTables(this.path, this.onCorrupt, this.#openedMs, waitForLocks)
    this.#corruptCopyPath ??= opened.corruptCopyPath
    if (opened.tables) this.#attach(opened.tables)
    else this.#failed(opened.failure)
  }

  #failed(failure: Error): void {
    this.#failure = failure
    reportStoreError(this, 'open', failure)
  }

  /**
   * Opens the file again after a failure that may pass, when REOPEN_INTERVAL_MS have gone by since the
   * last try (either way, should the clock step), failing at once on a lock another connection holds:
   * it runs within a request.
   */
  #reopenIfDue(): void {
    const nowMs = Date.now()
    const failure = this.#failure
    if (!failure || !mayPass(failure) || Math.abs(nowMs - this.#openedMs) < REOPEN_INTERVAL_MS) return
    this.#openedMs = nowMs
    this.#open(false)
  }

  get(key: string): StoredEntry[] {
    const { tables, commits } = this.#usable(false)
    commits.flushKey(key)
    const nowMs = Date.now()
    const hot = this.#hot?.get(key, nowMs)
    if (hot) {
      if (hot.touch) {
        // each variant as its own use is due
        const recordedMs = hot.entries.map((entry, at) =>
          this.#recordUse(tables, entry.id as number, hot.touchedMs[at], nowMs),
        )
        this.#hot?.touched(key, recordedMs)
      }
      return hot.entries
    }
    // a key never stored: no read transaction
    if (this.#keys?.mayHold(key) === false) return []
    const rows = tables.variants(key)
    if (rows.length === 0) this.#keys?.missed()
    const recordedMs = rows.map((row) => this.#recordUse(tables, row.id, row.last_used_ms, nowMs))
    const entries = rows.map((row) => this.#toEntry(tables, row))
    return this.#hot?.remember(key, entries, recordedMs) ?? entries
  }

  put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined {
    const context = this.#usable(false)
    if (expectedSizeBytes !== undefined && expectedSizeBytes > context.entryLimitBytes) return undefined
    const draft = draftOf(key, meta)
    // the body fits, not with its metadata: the commit would store nothing
    if (expectedSizeBytes !== undefined && expectedSizeBytes + draft.metaBytes > this.limits.maxBytes)
      return undefined
    return this.#writers.add(key, new SqliteEntryWriter(context, draft))
  }

  update(key: string, id: StoredEntry['id'], meta: EntryMeta): void {
    const { tables, eviction } = this.#usable()
    if (typeof id !== 'number') return
    const draft = draftOf(key, meta)
    let updated = false
    try {
      updated = tables.updateMeta(id, draft, eviction)
    } finally {
      // the hot tier keeps the entry's body, with the metadata as the file now holds it
      if (updated) this.#hot?.updated(key, id, draft.metaJson)
      else this.#hot?.forget(key)
    }
  }

  delete(key: string): void {
    this.#hot?.forget(key)
    this.#usable().tables.deleteKey(key)
    this.#writers.abortKey(key)
  }

  /**
   * Removes up to SWEEP_MAX_ROWS entries whose deleteAtMs is past `nowMs` (soonest first; 0 means
   * unknown and is never swept) and up to SWEEP_MAX_ROWS incomplete rows of killed writers.
   * Returns how many rows went; 0 when another process holds the write lock (it never waits).
   */
  sweep(nowMs: number = Date.now()): number {
    return this.#usable().tables.sweep(nowMs, SWEEP_MAX_ROWS)
  }

  /** Releases the file and stops the sweep timer; stored entries stay, writes in progress are dropped. */
  close(): void {
    this.#context?.commits.flush()
    this.#writers.abortAll()
    this.#closed = true
    this.#hot?.close()
    this.#keys?.close()
    clearInterval(this.#sweepTimer)
    this.#context?.tables.close()
  }

  /** Bytes (as counted for maxBytes) and number of the complete entries, across every process. */
  stats(): { totalBytes: number; entryCount: number } {
    const totals = this.#usable().tables.totals()
    return { totalBytes: totals.bytes, entryCount: totals.entries }
  }

  /**
   * The open tables and writer settings; throws when closed or failed. Queued commits are made
   * first (`flushCommits`), so what follows sees, deletes or counts them.
   */
  #usable(flushCommits = true): WriterContext {
    if (this.#closed) throw new Error('undici-cache: SqliteStore is closed')
    if (this.#context === undefined) this.#reopenIfDue()
    if (this.#context === undefined) throw this.#failure as Error
    if (flushCommits) this.#context.commits.flushFile()
    return this.#context
  }

  #writerContext(tables: SqliteTables, bodyFiles: boolean, file: string | undefined): WriterContext {
    return {
      bodyFiles: bodyFiles ? tables.files : undefined,
      tables,
      entryLimitBytes: Math.min(this.limits.maxEntryBytes, this.limits.maxBytes),
      chunkBytes: this.limits.chunkBytes,
      eviction: { maxBytes: this.limits.maxBytes, maxEntries: this.limits.maxEntries },
      commits: new CommitQueue(tables, file),
      release: (key, writer) => this.#release(key, writer),
      commitFailed: (error) => reportStoreError(this, 'commit', error),
    }
  }

  #toEntry(tables: SqliteTables, row: VariantRow): StoredEntry {
    const meta = JSON.parse(row.meta) as EntryMeta
    const entry = { ...meta, id: row.id, sizeBytes: row.body_bytes }
    const { body } = row
    if (body !== null) return { ...entry, body, readBody: () => (body.length > 0 ? [body] : []) }
    const { files } = tables
    if (row.body_file === 1 && files) {
      const sizeBytes = row.body_bytes
      return {
        ...entry,
        readBody: () => this.#readFile(files, row.id, sizeBytes, 0, sizeBytes),
        readRange: (startBytes, endBytes) => this.#readFile(files, row.id, sizeBytes, startBytes, endBytes),
      }
    }
    return { ...entry, readBody: () => this.#readChunkRows(tables, row.id, row.body_bytes) }
  }

  /** Chunk rows read one a step; a damaged one (not a busy or full database) drops its entry, reported. */
  *#readChunkRows(tables: SqliteTables, entryId: number, sizeBytes: number): Generator<Buffer> {
    try {
      yield* readChunks(tables, entryId, sizeBytes)
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code
      if (typeof code === 'string' && code.startsWith('SQLITE_') && !isTransient(error)) {
        reportStoreError(this, 'read', error)
        this.#hot?.forgetEntry(entryId)
        if (!this.#closed) tables.dropEntry(entryId)
      }
      throw error
    }
  }

  /**
   * A body file's reader of bytes `startBytes` up to `endBytes`; throws when it cannot be opened (the
   * caller asks the origin). A file gone or of another length drops its entry; a passing fault (out of
   * descriptors, EMFILE) does not.
   */
  #readFile(
    files: BodyFiles,
    entryId: number,
    sizeBytes: number,
    startBytes: number,
    endBytes: number,
  ): AsyncIterable<Buffer> {
    try {
      return files.reader(entryId, sizeBytes, startBytes, endBytes)
    } catch (error) {
      if (isLostBody(error)) {
        this.#hot?.forgetEntry(entryId)
        if (!this.#closed) this.#context?.tables.dropEntry(entryId)
      }
      throw error
    }
  }

  /**
   * Records a use of an entry unless this store's last use of it, or its time in the file (`rowMs`:
   * commit, second chance, or the hot tier's last touch), is under a minute old (a time ahead of the
   * clock is not); returns when the last recorded use is.
   */
  #recordUse(tables: SqliteTables, entryId: number, rowMs: number | undefined, nowMs: number): number {
    const markedMs = this.#markedMs.get(entryId)
    if (markedMs !== undefined && isRecent(markedMs, nowMs)) return markedMs
    if (rowMs !== undefined && isRecent(rowMs, nowMs)) {
      this.#markedMs.set(entryId, rowMs)
      return rowMs
    }
    tables.markUsed(entryId)
    this.#markedMs.set(entryId, nowMs)
    return nowMs
  }

  #release(key: string, writer: SqliteEntryWriter): void {
    this.#hot?.forget(key)
    this.#writers.release(key, writer)
  }
}

/** Less than TOUCH_INTERVAL_MS ago, and not ahead of the clock (another machine's, or before a step back). */
function isRecent(timeMs: number, nowMs: number): boolean {
  return timeMs <= nowMs && nowMs - timeMs < TOUCH_INTERVAL_MS
}
