/** The row changes SqliteTables makes inside its write transactions. */

import { LruMap } from './lru-map.js'
import type { KeyedRow } from './sqlite-key-filter.js'
import { isAbandoned } from './sqlite-liveness.js'
import {
  CHUNKED_ROW_VALUES,
  type ChunkArgs,
  type CommitArgs,
  commitTimeMs,
  type EntryDraft,
  type EntryRowValues,
  type EvictionLimits,
  insertEntryParams,
} from './sqlite-rows.js'
import type { SizedRow, Statements, StoredVariantRow } from './sqlite-statements.js'
import type { PendingTotals } from './sqlite-totals.js'
import type { UseBits } from './sqlite-use-bits.js'
import { MAX_VARIANTS_PER_KEY } from './store.js'

/**
 * How long a key's deletion is remembered: a request sent before it and committed within this long
 * after it is not stored (longer downloads are not expected to race a write).
 */
export const INVALIDATED_KEEP_MS = 10 * 60_000

/** Keys whose last delete by this store is remembered; an older one counts as another connection's. */
const OWN_DELETES_KEPT = 10_000

/**
 * Entries one eviction moves back for having been used (second chances) before it removes the least
 * recent regardless: the work of one write stays bounded when nearly every entry was used.
 */
export const MAX_SECOND_CHANCES = 64

/**
 * Inserts, commits, replacements, eviction and removal of entry rows, each inside a transaction that
 * SqliteTables runs: it reads what the transaction inserted and which body files it removed.
 */
export class RowWrites {
  readonly #sql: Statements
  readonly #totals: PendingTotals
  readonly #bits: UseBits
  readonly #onRemoved: (entryId: number) => void
  /** When this store last deleted each of the most recently deleted keys (see #deletedSinceSent). */
  readonly #ownDeletesMs = new LruMap<string, number>(OWN_DELETES_KEPT)
  /** Entries with a body file removed by the running transaction: their files go once it commits. */
  removedFiles: number[] = []
  /** The rows the running write transaction inserted. */
  inserting: KeyedRow[] = []

  constructor(sql: Statements, totals: PendingTotals, bits: UseBits, onRemoved: (entryId: number) => void) {
    this.#sql = sql
    this.#totals = totals
    this.#bits = bits
    this.#onRemoved = onRemoved
  }

  /** Appends one chunk row, inserting the incomplete entry row first; undefined when that row is gone. */
  appendRows(args: ChunkArgs): number | undefined {
    let entryId = args.entryId
    if (entryId === undefined) {
      entryId = this.insertEntry(args, CHUNKED_ROW_VALUES)
    } else if (this.#sql.markWritten.run(args.nowMs, entryId).changes === 0) {
      return undefined
    }
    this.#sql.insertChunk.run(entryId, args.seq, args.data)
    return entryId
  }

  /** One read of the key's complete entries gives both the commit time and the variant it replaces. */
  commitRows(args: CommitArgs): void {
    const sizeBytes = args.bodyBytes + args.draft.metaBytes
    // too big alone (the body fits, not with its metadata: nothing is evicted for it), or its key
    // deleted since the request was sent: not stored
    if (sizeBytes > args.limits.maxBytes || this.#deletedSinceSent(args.draft)) {
      if (args.entryId !== undefined) this.removeIncomplete(args.entryId, args.inFile ? 1 : 0)
      return
    }
    const stored = this.#sql.selectStoredVariants.all(args.draft.key)
    const storedMs = commitTimeMs(args.nowMs, stored)
    const entryId =
      args.entryId === undefined
        ? this.#insertInline(args, sizeBytes, storedMs)
        : this.#completeChunked(args, args.entryId, sizeBytes, storedMs)
    if (entryId === undefined) return
    for (const row of stored) if (row.vary_key === args.draft.varyKey) this.remove(row)
    for (const row of oldestBeyondBound(stored, args.draft.varyKey)) this.remove(row)
    this.#totals.add(sizeBytes, 1)
    this.#evict(entryId, args.limits, args.nowMs)
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
    return this.insertEntry(args, row)
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
      if (args.inFile) this.removedFiles.push(entryId)
      return undefined
    }
    if (args.data.length > 0) this.#sql.insertChunk.run(entryId, args.seq, args.data)
    return entryId
  }

  /** Inserts an entry row; its id. */
  insertEntry(args: ChunkArgs, row: EntryRowValues): number {
    const id = Number(this.#sql.insertEntry.run(...insertEntryParams(args, row)).lastInsertRowid)
    this.inserting.push({ id, key: args.draft.key })
    return id
  }

  #removeOtherVariants(draft: EntryDraft, keepId: number): void {
    for (const row of this.#sql.selectSameVariant.all(draft.key, draft.varyKey, keepId)) this.remove(row)
  }

  /**
   * Removes least recently used entries other than `keepId` (just committed or updated, never bigger
   * than maxBytes alone) while over a limit. Reads one totals row and one index entry per evicted row:
   * O(log n) each, no count or scan. The least recent one used since (its use bit set) is moved to
   * `nowMs` instead and passed over, at most MAX_SECOND_CHANCES times (CLOCK's second chance); when the
   * clock went back, it stays where it was, passed over all the same.
   */
  #evict(keepId: number, limits: EvictionLimits, nowMs: number): void {
    const totals = this.#totals.current()
    // the entries given a second chance: passed over when the walk meets them again
    const passed = new Set<number>()
    let secondChances = true
    let afterMs = Number.MIN_SAFE_INTEGER
    let afterId = Number.MIN_SAFE_INTEGER
    while (totals.bytes > limits.maxBytes || totals.entries > limits.maxEntries) {
      const row = this.#sql.selectLeastRecent.get(keepId, afterMs, afterId)
      if (row === undefined) {
        if (afterId === Number.MIN_SAFE_INTEGER) return
        // walked to the end over entries passed over: from the start again, nothing passed over
        afterMs = Number.MIN_SAFE_INTEGER
        afterId = Number.MIN_SAFE_INTEGER
        passed.clear()
        secondChances = false
        continue
      }
      if (passed.has(row.id) || (secondChances && this.#secondChance(row.id, nowMs))) {
        passed.add(row.id)
        secondChances &&= passed.size < MAX_SECOND_CHANCES
        afterMs = row.last_used_ms
        afterId = row.id
        continue
      }
      this.remove(row)
      totals.bytes -= row.size_bytes
      totals.entries -= 1
    }
  }

  /** Moves the entry to `nowMs` (never back) if it was used since its time; whether it was. */
  #secondChance(entryId: number, nowMs: number): boolean {
    if (!this.#bits.take(entryId)) return false
    this.#sql.markRecent.run(nowMs, entryId)
    return true
  }

  /** Forgets old deletions, removes at most `maxRows` expired entries and abandoned rows; how many went. */
  sweepRows(nowMs: number, maxRows: number): number {
    this.#sql.forgetInvalidated.run(nowMs - INVALIDATED_KEEP_MS)
    const expired = this.#sql.selectExpired.all(nowMs, maxRows)
    for (const row of expired) this.remove(row)
    this.#bits.dropUnused()
    return expired.length + this.removeAbandoned(nowMs, maxRows)
  }

  /** Removes incomplete rows no live writer can finish, looking at `maxRows` of them (-1: all). */
  removeAbandoned(nowMs: number, maxRows: number): number {
    const abandoned = this.#sql.selectIncomplete.all(maxRows).filter((row) => isAbandoned(row, nowMs))
    for (const row of abandoned) this.removeIncomplete(row.id, row.body_file)
    return abandoned.length
  }

  /** Removes every row under `key`, complete or not, and remembers when (see #deletedSinceSent). */
  removeKeyRows(key: string): void {
    for (const row of this.#sql.selectKeyRows.all(key)) this.remove(row)
    const nowMs = Date.now()
    this.#sql.markInvalidated.run(key, nowMs)
    this.#ownDeletesMs.set(key, nowMs)
  }

  /**
   * RFC 9111 §4.4: the key was deleted (invalidated, or found outdated) after the request was sent, by
   * this or another connection: the response may predate the change, so it is not committed. Another
   * connection's delete in the request's millisecond may have come after it; this store's own are
   * told apart by its interceptors (Invalidations#since), which refuse a request sent before them.
   */
  #deletedSinceSent(draft: EntryDraft): boolean {
    const deletedMs = this.#sql.selectInvalidatedMs.get(draft.key)?.at_ms
    if (deletedMs === undefined || deletedMs < draft.requestTimeMs) return false
    return deletedMs > draft.requestTimeMs || this.#ownDeletesMs.get(draft.key) !== deletedMs
  }

  /**
   * Replaces a complete entry's metadata, then evicts others while over a limit; false (a no-op) when it
   * is gone or would be too big.
   */
  updateRow(id: number, draft: EntryDraft, limits: EvictionLimits): boolean {
    const row = this.#sql.selectComplete.get(id, draft.key)
    if (row === undefined) return false
    const sizeBytes = row.body_bytes + draft.metaBytes
    // an entry too big alone keeps its metadata: others would be evicted for it in vain
    if (sizeBytes > limits.maxBytes) return false
    this.#sql.updateMeta.run(draft.metaJson, draft.varyKey, draft.deleteAtMs, sizeBytes, id)
    this.#totals.add(sizeBytes - row.size_bytes, 0)
    this.#removeOtherVariants(draft, id)
    this.#evict(id, limits, Date.now())
    return true
  }

  /** Removes an incomplete entry row and its chunks (and its body file, if `bodyFile` is 1). */
  removeIncomplete(entryId: number, bodyFile: number): void {
    this.remove({ id: entryId, size_bytes: 0, complete: 0, body_file: bodyFile })
  }

  /** Removes an entry row (and its chunks), counting it out of the totals if it was complete. */
  remove(row: SizedRow, withChunks = true): void {
    this.#onRemoved(row.id)
    if (row.body_file === 1) this.removedFiles.push(row.id)
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
