/** The database of one SqliteStore: every read and write, each write in one immediate transaction. */
import { statSync } from 'node:fs'
import type Database from 'better-sqlite3'
import { BODY_DIR_SUFFIX, BodyFiles, realFile } from './sqlite-body-files.js'
import type { KeyedRow, KeySource } from './sqlite-key-filter.js'
import { KeyReads } from './sqlite-key-reads.js'
import { LockWaits } from './sqlite-lock-waits.js'
import { RowWrites } from './sqlite-row-writes.js'
import {
  type ChunkArgs,
  type CommitArgs,
  type EntryDraft,
  type EvictionLimits,
  FILE_ROW_VALUES,
} from './sqlite-rows.js'
import { BUSY_TIMEOUT_MS, connect, isTransient, prepareSchema } from './sqlite-schema.js'
import { prepareStatements, type Statements, type TotalsRow, type VariantRow } from './sqlite-statements.js'
import { PendingTotals } from './sqlite-totals.js'
import { UseBits } from './sqlite-use-bits.js'
import { type TakenUses, WaitingUses } from './sqlite-uses.js'

const NO_USES: TakenUses = new Map()

/** Opens (creating or migrating) a store database and drops what killed writers left behind. */
export class SqliteTables {
  readonly #db: Database.Database
  readonly #sql: Statements
  readonly #totals: PendingTotals
  readonly #rows: RowWrites
  /** The body files of this database; undefined for ':memory:'. */
  readonly files: BodyFiles | undefined
  readonly #append: (args: ChunkArgs) => number | undefined
  readonly #begin: (args: ChunkArgs) => number
  readonly #drop: (entryId: number, withChunks: boolean) => void
  readonly #commit: (args: CommitArgs) => void
  readonly #commitMany: (list: CommitArgs[]) => void
  readonly #removeKey: (key: string) => void
  readonly #removeIncomplete: (entryId: number) => void
  readonly #update: (id: number, draft: EntryDraft, limits: EvictionLimits) => boolean
  readonly #sweep: (nowMs: number, maxRows: number) => number
  readonly #writeUses: () => void
  readonly #dataVersion: Database.Statement<[], number>
  /** The uses recorded and not written yet (see markUsed). */
  readonly #uses: WaitingUses
  /** The uses the running write transaction took: they wait again if it fails. */
  #takenUses: TakenUses = NO_USES
  readonly #bits: UseBits
  /** Told of every entry row this connection removes (replaced, evicted, deleted, swept). */
  onRemoved: ((entryId: number) => void) | undefined
  /**
   * Told after each write transaction this connection commits (not after a chunk's), with the rows it
   * inserted since the last time, in id order (the key filter adds them without reading them back).
   */
  onWritten: ((inserted: readonly KeyedRow[]) => void) | undefined
  /** The open could not look for body files without a row (the lock held, the disk full): a sweep will. */
  #orphanFilesLeft = false
  /** Incomplete rows whose removal failed (busy, disk full); the next sweep retries them. */
  readonly #undiscarded = new Set<number>()
  /** The rows inserted by committed write transactions, until onWritten is told. */
  #inserted: KeyedRow[] = []
  #open = true
  readonly #lock: LockWaits

  /** `waitForLocks` false: the open fails at once (SQLITE_BUSY) where it would wait for another connection. */
  constructor(path: string, nowMs: number, waitForLocks = true) {
    this.#db = connect(path, waitForLocks ? BUSY_TIMEOUT_MS : 0)
    this.#lock = new LockWaits(this.#db)
    // beside the file a symbolic link names, as its -wal: every path to it finds the same bodies (and
    // absolute, so a later process.chdir() does not lose them)
    const file = path === ':memory:' ? undefined : realFile(path)
    try {
      this.files = file === undefined ? undefined : new BodyFiles(file + BODY_DIR_SUFFIX, file)
      prepareSchema(this.#db, path)
      this.#sql = prepareStatements(this.#db)
      this.#bits = new UseBits(this.#db)
      this.#db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`)
    } catch (error) {
      this.#db.close()
      throw error
    }
    this.#totals = new PendingTotals(this.#sql)
    this.#rows = new RowWrites(this.#sql, this.#totals, this.#bits, (entryId) => this.onRemoved?.(entryId))
    this.#dataVersion = this.#db.prepare<[], number>('PRAGMA data_version').pluck()
    this.#append = this.#writeTransaction((args: ChunkArgs) => this.#rows.appendRows(args))
    this.#begin = this.#writeTransaction((args: ChunkArgs) => this.#rows.insertEntry(args, FILE_ROW_VALUES))
    this.#drop = this.#writeTransaction((entryId: number, withChunks: boolean) => {
      const row = this.#sql.selectRow.get(entryId)
      if (row) this.#rows.remove(row, withChunks)
    })
    this.#commit = this.#writeTransaction((args: CommitArgs) => this.#rows.commitRows(args))
    this.#commitMany = this.#writeTransaction((list: CommitArgs[]) => {
      for (const args of list) this.#rows.commitRows(args)
    })
    this.#removeKey = this.#writeTransaction((key: string) => this.#rows.removeKeyRows(key))
    // The writer that discards its row has removed its own file.
    this.#removeIncomplete = this.#writeTransaction((entryId: number) =>
      this.#rows.removeIncomplete(entryId, 0),
    )
    this.#update = this.#writeTransaction((id: number, draft: EntryDraft, limits: EvictionLimits) =>
      this.#rows.updateRow(id, draft, limits),
    )
    this.#sweep = this.#writeTransaction((sweepMs: number, maxRows: number) =>
      this.#rows.sweepRows(sweepMs, maxRows),
    )
    this.#writeUses = this.#restoringUses(this.#db.transaction(() => this.#applyUses()))
    this.#uses = new WaitingUses(fileIdentity(file), () => this.#lock.inBackground(() => this.#writeUses()))
    this.#cleanUp(nowMs)
  }

  /** Appends one chunk row, creating the incomplete entry row first; undefined when that row is gone. */
  appendChunk(args: ChunkArgs): number | undefined {
    this.assertOpen()
    return this.#lock.write(() => this.#committed(this.#append(args)))
  }

  /** Inserts the incomplete row of an entry whose body goes to its file; returns the entry id. */
  beginFileEntry(args: ChunkArgs): number {
    this.assertOpen()
    return this.#lock.write(() => this.#committed(this.#begin(args)))
  }

  /** Notes that a writer is still at work on an incomplete row; false when the row is gone. */
  markWritten(entryId: number, nowMs: number): boolean {
    this.assertOpen()
    return this.#lock.write(() => this.#sql.markWritten.run(nowMs, entryId).changes > 0)
  }

  /** Makes an entry complete, replaces its variant, then evicts least recently used entries. */
  commit(args: CommitArgs): void {
    this.assertOpen()
    this.#lock.write(() => this.#transact(() => this.#committed(this.#commit(args))))
  }

  /** Several commits in one transaction (group commit): all become visible together, or none. */
  commitMany(list: CommitArgs[]): void {
    this.assertOpen()
    this.#lock.write(() => this.#transact(() => this.#committed(this.#commitMany(list))))
  }

  /**
   * Drops an entry whose body is damaged or gone; skipped rather than waiting or throwing. When its
   * chunks cannot be removed (a damaged page), the row alone goes and they are left as orphans.
   */
  dropEntry(entryId: number): void {
    if (this.#lock.inBackground(() => this.#transact(() => this.#drop(entryId, true)))) return
    this.#lock.inBackground(() => this.#transact(() => this.#drop(entryId, false)))
  }

  /** Drops an incomplete entry row and its chunks; never throws (a failure is retried by `sweep`). */
  discard(entryId: number): void {
    if (!this.#open) return
    try {
      this.#lock.write(() => this.#removeIncomplete(entryId))
      this.#undiscarded.delete(entryId)
    } catch {
      this.#undiscarded.add(entryId)
    }
  }

  /** Drops every row under `key`, complete or not. */
  deleteKey(key: string): void {
    this.assertOpen()
    this.#lock.write(() => this.#transact(() => this.#removeKey(key)))
  }

  /**
   * Replaces the metadata of a complete entry under `draft.key`, then evicts other entries while over
   * a limit (the new metadata may be bigger); false (a no-op) when the entry is gone or would be too big.
   */
  updateMeta(id: number, draft: EntryDraft, limits: EvictionLimits): boolean {
    this.assertOpen()
    return this.#lock.write(() => this.#transact(() => this.#update(id, draft, limits)))
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

  /**
   * Records a use of an entry, for eviction (a second chance, see UseBits). Uses are written together
   * (see WaitingUses): a write each cost a hit of an entry not used for a minute ~30 µs.
   */
  markUsed(entryId: number): void {
    this.#uses.add(entryId)
  }

  /** The uses waiting (this store's and this process's other stores' on the file), in the running write transaction. */
  #applyUses(): void {
    this.#takenUses = this.#uses.take()
    this.#bits.set([...this.#takenUses.values()].flat())
  }

  /** Runs `transaction` immediate; when it fails, the uses it took wait again. */
  #restoringUses<F extends (...args: never[]) => unknown>(transaction: Database.Transaction<F>): F {
    const { immediate } = transaction as unknown as { immediate: (...args: unknown[]) => unknown }
    return ((...args: unknown[]) => {
      try {
        return immediate(...args)
      } catch (error) {
        WaitingUses.restore(this.#takenUses)
        throw error
      } finally {
        this.#takenUses = NO_USES
      }
    }) as unknown as F
  }

  /**
   * Retries the discards that failed, then removes at most `maxRows` expired entries (delete_at_ms
   * passed, soonest first) and at most `maxRows` abandoned incomplete rows, and the body files without
   * a row the open could not look for; returns how many rows went. Never waits for the write lock: 0
   * when another connection holds it.
   */
  sweep(nowMs: number, maxRows: number): number {
    this.assertOpen()
    for (const entryId of [...this.#undiscarded]) {
      if (this.#lock.inBackground(() => this.#removeIncomplete(entryId))) this.#undiscarded.delete(entryId)
    }
    let removed = 0
    const swept = this.#lock.inBackground(() => {
      removed = this.#transact(() => this.#sweep(nowMs, maxRows))
    })
    if (swept && this.#orphanFilesLeft) this.#lock.inBackground(() => this.#removeOrphanFiles())
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
    this.#uses.close()
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
      this.#rows.removeAbandoned(nowMs, -1)
      this.#sql.orphanChunks.run()
      this.#sql.recountTotals.run()
      this.#bits.dropUnused()
    })
    try {
      this.#lock.withoutWaiting(() => this.#transact(() => cleanUp()))
      // a damaged page only this reads fails the open too
      this.#removeOrphanFiles()
    } catch (error) {
      if (isTransient(error)) {
        // the lock held or the disk full: the first sweep that has the lock removes the orphan files
        this.#orphanFilesLeft = true
        return
      }
      this.#uses.close()
      this.#db.close()
      throw error
    }
  }

  /** Removes the body files that have no row (their writer gone, or the file written after its row went). */
  #removeOrphanFiles(): void {
    this.files?.removeOrphans((entryId) => this.#sql.selectRow.get(entryId) !== undefined)
    this.#orphanFilesLeft = false
  }

  /** A write transaction whose totals changes are written once, last, before it commits. */
  #writeTransaction<F extends (...args: never[]) => unknown>(write: F): F {
    const transaction = this.#db.transaction(((...args: Parameters<F>) => {
      // eviction reads the uses: those waiting go first
      this.#applyUses()
      this.#rows.inserting = []
      this.#totals.begin()
      const result = write(...args)
      this.#totals.write()
      return result
    }) as F)
    return this.#restoringUses(transaction)
  }

  /** Runs a write transaction, then removes the body files of the entries it removed. */
  #transact<R>(write: () => R): R {
    this.#rows.removedFiles = []
    const result = write()
    this.files?.remove(this.#rows.removedFiles)
    this.#rows.removedFiles = []
    const inserted = this.#inserted
    this.#inserted = []
    this.onWritten?.(inserted)
    return result
  }

  /** After a write that may insert rows has committed: they are kept for onWritten. */
  #committed<R>(result: R): R {
    for (const row of this.#rows.inserting) this.#inserted.push(row)
    this.#rows.inserting = []
    return result
  }
}

/**
 * The database file as the uses of this process's stores are grouped by: its path and its inode, so
 * that a store on a file deleted and made again at the path (ids counted from 1 again) is not a peer.
 */
function fileIdentity(file: string | undefined): string | undefined {
  if (file === undefined) return undefined
  const stats = statSync(file, { bigint: true, throwIfNoEntry: false })
  return stats === undefined ? file : `${file}#${stats.dev}:${stats.ino}`
}
