/** The totals row (bytes and entries of complete rows) as one write transaction changes it. */
import type { Statements, TotalsRow } from './sqlite-statements.js'

/**
 * Sums a transaction's changes to the totals in memory and writes them with one UPDATE just before it
 * commits: a group commit of n entries reads and writes the row once, not n times. The row is read
 * at most once per transaction, when eviction first needs the current totals.
 */
export class PendingTotals {
  readonly #sql: Pick<Statements, 'selectTotals' | 'addTotals'>
  #stored: TotalsRow | undefined
  #bytes = 0
  #entries = 0

  constructor(sql: Pick<Statements, 'selectTotals' | 'addTotals'>) {
    this.#sql = sql
  }

  /** A transaction starts: whatever a rolled-back one left is dropped. */
  begin(): void {
    this.#stored = undefined
    this.#bytes = 0
    this.#entries = 0
  }

  add(bytes: number, entries: number): void {
    this.#bytes += bytes
    this.#entries += entries
  }

  /** The totals as this transaction has them so far (a fresh object the caller may change). */
  current(): TotalsRow {
    this.#stored ??= this.#sql.selectTotals.get() as TotalsRow
    return { bytes: this.#stored.bytes + this.#bytes, entries: this.#stored.entries + this.#entries }
  }

  /** Writes the summed changes; call last inside the transaction. */
  write(): void {
    if (this.#bytes !== 0 || this.#entries !== 0) this.#sql.addTotals.run(this.#bytes, this.#entries)
    this.begin()
  }
}
