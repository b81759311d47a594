import type Database from 'better-sqlite3'
import type { BudgetedRead, KeySource, ReadBudget } from './sqlite-key-filter.js'
import type { TotalsRow } from './sqlite-statements.js'

/** The key filter's reads: by id (the primary key) or in key order (the key index alone). */
export const KEY_READ_SQL = {
  rowsAfterId: 'SELECT id, key FROM entries WHERE id > ? ORDER BY id LIMIT ?',
  maxId: 'SELECT COALESCE(MAX(id), 0) AS id FROM entries',
  firstKeys: 'SELECT key FROM entries ORDER BY key LIMIT ?',
  keysAfterKey: 'SELECT key FROM entries WHERE key > ? ORDER BY key LIMIT ?',
} as const

/** What the filter also asks of the connection's tables. */
interface Tables {
  assertOpen(): void
  totals(): TotalsRow
}

/** The rows (at most `budget.rows`: the statement's LIMIT) up to the one that brings their keys to `budget.chars` characters. */
function withinBudget<Row extends { key: string }>(
  rows: IterableIterator<Row>,
  budget: ReadBudget,
): BudgetedRead<Row> {
  const taken: Row[] = []
  let chars = 0
  for (const row of rows) {
    taken.push(row)
    chars += row.key.length
    if (chars >= budget.chars) return { rows: taken, more: true }
  }
  return { rows: taken, more: taken.length >= budget.rows }
}

/** The KeySource of one connection. */
export class KeyReads implements KeySource {
  readonly #tables: Tables
  readonly #rowsAfterId: Database.Statement<[number, number], { id: number; key: string }>
  readonly #maxId: Database.Statement<[], { id: number }>
  readonly #firstKeys: Database.Statement<[number], { key: string }>
  readonly #keysAfterKey: Database.Statement<[string, number], { key: string }>

  constructor(db: Database.Database, tables: Tables) {
    this.#tables = tables
    this.#rowsAfterId = db.prepare(KEY_READ_SQL.rowsAfterId)
    this.#maxId = db.prepare(KEY_READ_SQL.maxId)
    this.#firstKeys = db.prepare(KEY_READ_SQL.firstKeys)
    this.#keysAfterKey = db.prepare(KEY_READ_SQL.keysAfterKey)
  }

  totals(): TotalsRow {
    return this.#tables.totals()
  }

  maxId(): number {
    this.#tables.assertOpen()
    return this.#maxId.get()?.id ?? 0
  }

  keysAfter(afterId: number, budget: ReadBudget): BudgetedRead<{ id: number; key: string }> {
    this.#tables.assertOpen()
    return withinBudget(this.#rowsAfterId.iterate(afterId, budget.rows), budget)
  }

  keysInOrder(afterKey: string | undefined, budget: ReadBudget): BudgetedRead<string> {
    this.#tables.assertOpen()
    const rows =
      afterKey === undefined
        ? this.#firstKeys.iterate(budget.rows)
        : this.#keysAfterKey.iterate(afterKey, budget.rows)
    const read = withinBudget(rows, budget)
    return { rows: read.rows.map((row) => row.key), more: read.more }
  }
}
