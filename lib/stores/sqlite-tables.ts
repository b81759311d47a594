/** The database of one SqliteStore: every read and write, each write in one immediate transaction. */
import type Database from 'better-sqlite3'
import { BODY_DIR_SUFFIX, BodyFiles } from './sqlite-body-files.js'
import type { KeyedRow, KeySource } from './sqlite-key-filter.js'
import { KeyReads } from './sqlite-key-reads.js'
import { isAbandoned } from './sqlite-liveness.js'
import { LockWaits } from './sqlite-lock-waits.js'
import {
  CHUNKED_ROW_VALUES,
  type ChunkArgs,
  type CommitArgs,
  commitTimeMs,
  type EntryDraft,
  type EntryRowValues,
  type EvictionLimits,
  FILE_ROW_VALUES,
  insertEntryParams,
} from './sqlite-rows.js'
import { connect, isTransient, prepareSchema } from './sqlite-schema.js'
import {
  prepareStatements,
  type SizedRow,
  type Statements,
  type StoredVariantRow,
  type TotalsRow,
  type VariantRow,
} from './sqlite-statements.js'
import { PendingTotals } from './sqlite-totals.js'
import { MAX_VARIANTS_PER_KEY } from './store.js'

/**
 * How long a key's deletion is remembered: a request sent before it and committed within this long
 * after it is not stored (longer downloads are not expected to race a write).
 */
export const INVALIDATED_KEEP_MS = 10 * 60_000

/** Opens (creating or migrating) a store database and drops what killed writers left behind. */
export class SqliteTables {
  readonly #db: Database.Database
  readonly #sql: Statements
  readonly #totals: PendingTotals
  /** The body files of this database; undefined for ':memory:'. */
  readonly files: BodyFiles | undefined
  readonly #append: Database.Transaction<(args: ChunkArgs) => number | undefined>
  readonly #begin: Database.Transaction<(args: ChunkArgs) => number>
  readonly #drop: Database.Transaction<(entryId: number, withChunks: boolean) => void>
  readonly #commit: Database.Transaction<(args: CommitArgs) => void>
  readonly #commitMany: Database.Transaction<(list: CommitArgs[]) => void>
  readonly #removeKey: Database.Transaction<(key: string) => void>
  readonly #removeIncomplete: Database.Transaction<(entryId: number) => void>
  readonly #update: Database.Transaction<(id: number, draft: EntryDraft, limits: EvictionLimits) => void>
  readonly #sweep: Database.Transaction<(nowMs: number, maxRows: number) => number>
  readonly #dataVersion: Database.Statement<[], number>
  /** Told of every entry row this connection removes (replaced, evicted, deleted, swept). */
  onRemoved: ((entryId: number) => void) | undefined
  /**
   * Told after each write transaction this connection commits (not after a chunk's), with the rows it
   * inserted since the last time, in id order (the key filter adds them without reading them back).
   */
  onWritten: ((inserted: readonly KeyedRow[]) => void) | undefined
  /** Incomplete rows whose removal failed (busy, disk full); the next sweep retries them. */
  readonly #undiscarded = new Set<number>()
  /** Entries with a body file removed by the running transaction: their files go once it commits. */
  #removedFiles: number[] = []
  /** The rows the running write transaction inserted. */
  #inserting: KeyedRow[] = []
  /** The rows inserted by committed write transactions, until onWritten is told. */
  #inserted: KeyedRow[] = []
  #open = true
  readonly #lock: LockWaits

  constructor(path: string, nowMs: number) {
    this.#db = connect(path)
    this.#lock = new LockWaits(this.#db)
    try {
      this.files = path === ':memory:' ? undefined : new BodyFiles(path + BODY_DIR_SUFFIX, path)
      prepareSchema(this.#db, path)
      this.#sql = prepareStatements(this.#db)
    } catch (error) {
      this.#db.close()
      throw error
    }
    this.#totals = new PendingTotals(this.#sql)
    this.#dataVersion = this.#db.prepare<[], number>('PRAGMA data_version').pluck()
    this.#append = this.#writeTransaction((args: ChunkArgs) => this.#appendRows(args))
    this.#begin = this.#writeTransaction((args: ChunkArgs) => this.#insertEntry(args, FILE_ROW_VALUES))
    this.#drop = this.#writeTransaction((entryId: number, withChunks: boolean) => {
      const row = this.#sql.selectRow.get(entryId)
      if (row) this.#remove(row, withChunks)
    })
    this.#commit = this.#writeTransaction((args: CommitArgs) => this.#commitRows(args))
    this.#commitMany = this.#writeTransaction((list: CommitArgs[]) => {
      for (const args of list) this.#commitRows(args)
    })
    this.#removeKey = this.#writeTransaction((key: string) => this.#removeKeyRows(key))
    // The writer that discards its row has removed its own file.
    this.#removeIncomplete = this.#writeTransaction((entryId: number) =>
      this.#remove({ id: entryId, size_bytes: 0, complete: 0, body_file: 0 }),
    )
    this.#update = this.#writeTransaction((id: number, draft: EntryDraft, limits: EvictionLimits) =>
      this.#updateRow(id, draft, limits),
    )
    this.#sweep = this.#writeTransaction((sweepMs: number, maxRows: number) =>
      this.#sweepRows(sweepMs, maxRows),
    )
    this.#cleanUp(nowMs)
  }

  /** Appends one chunk row, creating the incomplete entry row first; undefined when that row is gone. */
  appendChunk(args: ChunkArgs): number | undefined {
    this.assertOpen()
    return this.#lock.write(() => this.#committed(this.#append.immediate(args)))
  }

  /** Inserts the incomplete row of an entry whose body goes to its file; returns the entry id. */
  beginFileEntry(args: ChunkArgs): number {
    this.assertOpen()
    return this.#lock.write(() => this.#committed(this.#begin.immediate(args)))
  }

  /** Notes that a writer is still at work on an incomplete row; false when the row is gone. */
  markWritten(entryId: number, nowMs: number): boolean {
    this.assertOpen()
    return this.#lock.write(() => this.#sql.markWritten.run(nowMs, entryId).changes > 0)
  }

  /** Makes an entry complete, replaces its variant, then evicts least recently used entries. */
  commit(args: CommitArgs): void {
    this.assertOpen()
    this.#lock.write(() => this.#transact(() => this.#committed(this.#commit.immediate(args))))
  }

  /** Several commits in one transaction (group commit): all become visible together, or none. */
  commitMany(list: CommitArgs[]): void {
    this.assertOpen()
    this.#lock.write(() => this.#transact(() => this.#committed(this.#commitMany.immediate(list))))
  }

  /**
   * Drops an entry whose body is damaged or gone; skipped rather than waiting or throwing. When its
   * chunks cannot be removed (a damaged page), the row alone goes and they are left as orphans.
   */
  dropEntry(entryId: number): void {
    if (this.#lock.inBackground(() => this.#transact(() => this.#drop.immediate(entryId, true)))) return
    this.#lock.inBackground(() => this.#transact(() => this.#drop.immediate(entryId, false)))
  }

  /** Drops an incomplete entry row and its chunks; never throws (a failure is retried by `sweep`). */
  discard(entryId: number): void {
    if (!this.#open) return
    try {
      this.#lock.write(() => this.#removeIncomplete.immediate(entryId))
      this.#undiscarded.delete(entryId)
    } catch {
      this.#undiscarded.add(entryId)
    }
  }

  /** Drops every row under `key`, complete or not. */
  deleteKey(key: string): void {
    this.assertOpen()
    this.#lock.write(() => this.#transact(() => this.#removeKey.immediate(key)))
  }

  /**
   * Replaces the metadata of a complete entry under `draft.key`, then evicts other entries while over
   * a limit (the new metadata may be bigger); no-op when the entry is gone.
   */
  updateMeta(id: number, draft: EntryDraft, limits: EvictionLimits): void {
    this.assertOpen()
    this.#lock.write(() => this.#transact(() => this.#update.immediate(id, draft, limits)))
  }

  /** Changes whenever another connection commits (SQLite's `PRAGMA data_version`). */
  dataVersion(): number {
    this.assertOpen()
    return this.#dataVersion.get() as number
  }

  /** Complete entries under `key`, newest first. */
  variants(key: string): VariantRow[] {
    this.assertOpen()
    return this.#sql.selectVariants.all(key)
  }

  /**
   * One chunk of a body, undefined when its entry is gone (replaced, evicted). A row missing from an
   * entry still there is a damaged file: an error coded as SQLite's own for one.
   */
  chunk(entryId: number, seq: number): Buffer | undefined {
    this.assertOpen()
    const data = this.#sql.selectChunk.get(entryId, seq)?.data
    if (data === undefined && this.#sql.selectRow.get(entryId)) {
      throw Object.assign(new Error(`undici-cache: chunk ${seq} of entry ${entryId} is missing`), {
        code: 'SQLITE_CORRUPT',
      })
    }
    return data
  }

  /** Records a use of an entry for eviction order; skipped rather than waiting or throwing. */
  markUsed(entryId: number, nowMs: number): boolean {
    return this.#lock.inBackground(() => this.#sql.markUsed.run(nowMs, entryId))
  }

  /**
   * Retries the discards that failed, then removes at most `maxRows` expired entries (delete_at_ms
   * passed, soonest first) and at most `maxRows` abandoned incomplete rows; returns how many rows
   * went. Never waits for the write lock: 0 when another connection holds it.
   */
  sweep(nowMs: number, maxRows: number): number {
    this.assertOpen()
    for (const entryId of [...this.#undiscarded]) {
      if (this.#lock.inBackground(() => this.#removeIncomplete.immediate(entryId)))
        this.#undiscarded.delete(entryId)
    }
    let removed = 0
    this.#lock.inBackground(() => {
      removed = this.#transact(() => this.#sweep.immediate(nowMs, maxRows))
    })
    return removed
  }

  /** What the key filter reads, on this connection. */
  keyReads(): KeySource {
    return new KeyReads(this.#db, this)
  }

  /** Bytes and count of the complete entries. */
  totals(): TotalsRow {
    this.assertOpen()
    return this.#sql.selectTotals.get() as TotalsRow
  }

  close(): void {
    if (!this.#open) return
    this.#open = false
    this.#db.close()
  }

  /** Throws once the store is closed. */
  assertOpen(): void {
    if (!this.#open) throw new Error('undici-cache: SqliteStore is closed')
  }

  /**
   * On open: killed writers' rows, chunks without a row (none expected), and a recount of the totals.
   * A cleanup that finds the disk full or the lock held (it does not wait for it) is skipped (a later
   * open or sweep does it); any other failure (read-only, damaged file) throws.
   */
  #cleanUp(nowMs: number): void {
    const cleanUp = this.#writeTransaction(() => {
      this.#removeAbandoned(nowMs, -1)
      this.#sql.orphanChunks.run()
      this.#sql.recountTotals.run()
    })
    try {
      this.#lock.withoutWaiting(() => this.#transact(() => cleanUp.immediate()))
    } catch (error) {
      if (isTransient(error)) return
      this.#db.close()
      throw error
    }
    this.files?.removeOrphans((entryId) => this.#sql.selectRow.get(entryId) !== undefined)
  }

  /** A write transaction whose totals changes are written once, last, before it commits. */
  #writeTransaction<F extends (...args: never[]) => unknown>(write: F): Database.Transaction<F> {
    return this.#db.transaction(((...args: Parameters<F>) => {
      this.#inserting = []
      this.#totals.begin()
      const result = write(...args)
      this.#totals.write()
      return result
    }) as F)
  }

  /** Runs a write transaction, then removes the body files of the entries it removed. */
  #transact<R>(write: () => R): R {
    this.#removedFiles = []
    const result = write()
    this.files?.remove(this.#removedFiles)
    this.#removedFiles = []
    const inserted = this.#inserted
    this.#inserted = []
    this.onWritten?.(inserted)
    return result
  }

  /** After a write that may insert rows has committed: they are kept for onWritten. */
  #committed<R>(result: R): R {
    for (const row of this.#inserting) this.#inserted.push(row)
    this.#inserting = []
    return result
  }

  #appendRows(args: ChunkArgs): number | undefined {
    let entryId = args.entryId
    if (entryId === undefined) {
      entryId = this.#insertEntry(args, CHUNKED_ROW_VALUES)
    } else if (this.#sql.markWritten.run(args.nowMs, entryId).changes === 0) {
      return undefined
    }
    this.#sql.insertChunk.run(entryId, args.seq, args.data)
    return entryId
  }

  /** One read of the key's complete entries gives both the commit time and the variant it replaces. */
  #commitRows(args: CommitArgs): void {
    const sizeBytes = args.bodyBytes + args.draft.metaBytes
    if (sizeBytes > args.limits.maxBytes) {
      // too big alone (the body fits, not with its metadata): not stored, and nothing evicted for it
      if (args.entryId !== undefined)
        this.#remove({ id: args.entryId, size_bytes: 0, complete: 0, body_file: args.inFile ? 1 : 0 })
      return
    }
    if (this.#deletedSinceSent(args.draft)) {
      if (args.entryId !== undefined)
        this.#remove({ id: args.entryId, size_bytes: 0, complete: 0, body_file: args.inFile ? 1 : 0 })
      return
    }
    const stored = this.#sql.selectStoredVariants.all(args.draft.key)
    const storedMs = commitTimeMs(args.nowMs, stored)
    const entryId =
      args.entryId === undefined
        ? this.#insertInline(args, sizeBytes, storedMs)
        : this.#completeChunked(args, args.entryId, sizeBytes, storedMs)
    if (entryId === undefined) return
    for (const row of stored) if (row.vary_key === args.draft.varyKey) this.#remove(row)
    for (const row of oldestBeyondBound(stored, args.draft.varyKey)) this.#remove(row)
    this.#totals.add(sizeBytes, 1)
    this.#evict(entryId, args.limits)
  }

  #insertInline(args: CommitArgs, sizeBytes: number, storedMs: number): number {
    const row: EntryRowValues = {
      complete: 1,
      body: args.data,
      bodyBytes: args.bodyBytes,
      sizeBytes,
      storedMs,
      bodyFile: 0,
    }
    return this.#insertEntry(args, row)
  }

  /** Flips the row to complete with its last chunk; undefined when the row is gone. */
  #completeChunked(
    args: CommitArgs,
    entryId: number,
    sizeBytes: number,
    storedMs: number,
  ): number | undefined {
    const changes = this.#sql.markComplete.run(
      args.bodyBytes,
      sizeBytes,
      storedMs,
      args.nowMs,
      entryId,
    ).changes
    if (changes === 0) {
      // Removed by another process while written: its file (maybe made after that removal) goes too.
      if (args.inFile) this.#removedFiles.push(entryId)
      return undefined
    }
    if (args.data.length > 0) this.#sql.insertChunk.run(entryId, args.seq, args.data)
    return entryId
  }

  #insertEntry(args: ChunkArgs, row: EntryRowValues): number {
    const id = Number(this.#sql.insertEntry.run(...insertEntryParams(args, row)).lastInsertRowid)
    this.#inserting.push({ id, key: args.draft.key })
    return id
  }

  #removeOtherVariants(draft: EntryDraft, keepId: number): void {
    for (const row of this.#sql.selectSameVariant.all(draft.key, draft.varyKey, keepId)) this.#remove(row)
  }

  /**
   * Removes least recently used entries other than `keepId` (just committed or updated, never bigger
   * than maxBytes alone) while over a limit. Reads one totals row and one index entry per evicted row:
   * O(log n) each, no count or scan.
   */
  #evict(keepId: number, limits: EvictionLimits): void {
    const totals = this.#totals.current()
    while (totals.bytes > limits.maxBytes || totals.entries > limits.maxEntries) {
      const row = this.#sql.selectLeastRecent.get(keepId)
      if (row === undefined) return
      this.#remove(row)
      totals.bytes -= row.size_bytes
      totals.entries -= 1
    }
  }

  #sweepRows(nowMs: number, maxRows: number): number {
    this.#sql.forgetInvalidated.run(nowMs - INVALIDATED_KEEP_MS)
    const expired = this.#sql.selectExpired.all(nowMs, maxRows)
    for (const row of expired) this.#remove(row)
    return expired.length + this.#removeAbandoned(nowMs, maxRows)
  }

  /** Removes incomplete rows no live writer can finish, looking at `maxRows` of them (-1: all). */
  #removeAbandoned(nowMs: number, maxRows: number): number {
    const abandoned = this.#sql.selectIncomplete.all(maxRows).filter((row) => isAbandoned(row, nowMs))
    for (const row of abandoned)
      this.#remove({ id: row.id, size_bytes: 0, complete: 0, body_file: row.body_file })
    return abandoned.length
  }

  #removeKeyRows(key: string): void {
    for (const row of this.#sql.selectKeyRows.all(key)) this.#remove(row)
    this.#sql.markInvalidated.run(key, Date.now())
  }

  /**
   * RFC 9111 §4.4: the key was deleted (invalidated, or found outdated) after the request was sent, by
   * this or another connection: the response may predate the change, so it is not committed.
   */
  #deletedSinceSent(draft: EntryDraft): boolean {
    const deletedMs = this.#sql.selectInvalidatedMs.get(draft.key)?.at_ms
    return deletedMs !== undefined && deletedMs > draft.requestTimeMs
  }

  #updateRow(id: number, draft: EntryDraft, limits: EvictionLimits): void {
    const row = this.#sql.selectComplete.get(id, draft.key)
    if (row === undefined) return
    const sizeBytes = row.body_bytes + draft.metaBytes
    // an entry too big alone keeps its metadata: others would be evicted for it in vain
    if (sizeBytes > limits.maxBytes) return
    this.#sql.updateMeta.run(draft.metaJson, draft.varyKey, draft.deleteAtMs, sizeBytes, id)
    this.#totals.add(sizeBytes - row.size_bytes, 0)
    this.#removeOtherVariants(draft, id)
    this.#evict(id, limits)
  }

  #remove(row: SizedRow, withChunks = true): void {
    this.onRemoved?.(row.id)
    if (row.body_file === 1) this.#removedFiles.push(row.id)
    if (withChunks) this.#sql.deleteChunks.run(row.id)
    this.#sql.deleteEntry.run(row.id)
    if (row.complete === 1) this.#totals.add(-row.size_bytes, -1)
  }
}

/** The other variants under a key past MAX_VARIANTS_PER_KEY once one more is committed, oldest first out. */
function oldestBeyondBound(stored: StoredVariantRow[], varyKey: string): StoredVariantRow[] {
  const others = stored.filter((row) => row.vary_key !== varyKey)
  if (others.length < MAX_VARIANTS_PER_KEY) return []
  return others.sort((a, b) => b.stored_ms - a.stored_ms || b.id - a.id).slice(MAX_VARIANTS_PER_KEY - 1)
}
