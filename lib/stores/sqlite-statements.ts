/** Every statement SqliteStore runs, with the row shapes it reads. */
import type Database from 'better-sqlite3'
import type { IncompleteRow } from './sqlite-liveness.js'

/**
 * The SQL of each statement. All but `orphanChunks` and `recountTotals` (run once, on open, scanning
 * covering indexes) search an index: no write costs more than O(log n) per row it touches.
 */
export const STATEMENT_SQL = {
  insertEntry: `INSERT INTO entries (key, vary_key, complete, meta, body, body_bytes, size_bytes, body_file,
      written_ms, stored_ms, last_used_ms, delete_at_ms, writer_host, writer_pid, writer_token)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  markWritten: 'UPDATE entries SET written_ms = ? WHERE id = ? AND complete = 0',
  insertChunk: 'INSERT INTO chunks (entry_id, seq, data) VALUES (?, ?, ?)',
  markComplete: `UPDATE entries SET complete = 1, body_bytes = ?, size_bytes = ?, stored_ms = ?, last_used_ms = ?
    WHERE id = ? AND complete = 0`,
  selectVariants: `SELECT id, meta, body, body_bytes, body_file, last_used_ms FROM entries
    WHERE key = ? AND complete = 1 ORDER BY stored_ms DESC, id DESC`,
  selectChunk: 'SELECT data FROM chunks WHERE entry_id = ? AND seq = ?',
  selectInvalidatedMs: 'SELECT at_ms FROM invalidated WHERE key = ?',
  markInvalidated: `INSERT INTO invalidated (key, at_ms) VALUES (?, ?)
    ON CONFLICT (key) DO UPDATE SET at_ms = max(at_ms, excluded.at_ms)`,
  forgetInvalidated: 'DELETE FROM invalidated WHERE at_ms < ?',
  selectStoredVariants: `SELECT id, size_bytes, 1 AS complete, body_file, vary_key, stored_ms FROM entries
    WHERE key = ? AND complete = 1`,
  // an entry eviction found used (a second chance); never back in time
  markRecent: 'UPDATE entries SET last_used_ms = MAX(last_used_ms, ?) WHERE id = ?',
  selectSameVariant: `SELECT id, size_bytes, complete, body_file FROM entries
    WHERE key = ? AND complete = 1 AND vary_key = ? AND id != ?`,
  selectKeyRows: 'SELECT id, size_bytes, complete, body_file FROM entries WHERE key = ?',
  selectComplete:
    'SELECT size_bytes, body_bytes, body_file FROM entries WHERE id = ? AND key = ? AND complete = 1',
  updateMeta: 'UPDATE entries SET meta = ?, vary_key = ?, delete_at_ms = ?, size_bytes = ? WHERE id = ?',
  // the least recent after a place in the order (one eviction walks on past its second chances)
  selectLeastRecent: `SELECT id, size_bytes, 1 AS complete, body_file, last_used_ms FROM entries
    WHERE complete = 1 AND id != ? AND (last_used_ms, id) > (?, ?) ORDER BY last_used_ms, id LIMIT 1`,
  selectExpired: `SELECT id, size_bytes, 1 AS complete, body_file FROM entries
    WHERE complete = 1 AND delete_at_ms > 0 AND delete_at_ms <= ? ORDER BY delete_at_ms LIMIT ?`,
  selectIncomplete: `SELECT id, written_ms, writer_host, writer_pid, writer_token, body_file FROM entries
    WHERE complete = 0 ORDER BY written_ms LIMIT ?`,
  selectRow: 'SELECT id, size_bytes, complete, body_file FROM entries WHERE id = ?',
  deleteChunks: 'DELETE FROM chunks WHERE entry_id = ?',
  deleteEntry: 'DELETE FROM entries WHERE id = ?',
  selectTotals: 'SELECT bytes, entries FROM totals WHERE id = 1',
  addTotals: 'UPDATE totals SET bytes = bytes + ?, entries = entries + ? WHERE id = 1',
  orphanChunks: `DELETE FROM chunks WHERE entry_id IN
    (SELECT DISTINCT entry_id FROM chunks WHERE entry_id NOT IN (SELECT id FROM entries))`,
  recountTotals: `UPDATE totals SET
    bytes = (SELECT COALESCE(SUM(size_bytes), 0) FROM entries WHERE complete = 1),
    entries = (SELECT COUNT(*) FROM entries WHERE complete = 1)
    WHERE id = 1`,
} as const

/** One row of `entries` as `get` reads it. */
export interface VariantRow {
  id: number
  meta: string
  body: Buffer | null
  body_bytes: number
  /** 1 when the body is a file (see sqlite-body-files.ts). */
  body_file: number
  last_used_ms: number
}

/** A row about to be removed; `complete` rows count in the totals. */
export interface SizedRow {
  id: number
  size_bytes: number
  complete: number
  body_file: number
}

/** A complete entry under the key a commit is about to store. */
export interface StoredVariantRow extends SizedRow {
  vary_key: string
  stored_ms: number
}

/** Running totals of the complete entries. */
export interface TotalsRow {
  bytes: number
  entries: number
}

type Statement<Params extends unknown[], Row = unknown> = Database.Statement<Params, Row>

/** The columns of `insertEntry`, in order (positional: ~2× faster to bind than named parameters). */
export type InsertEntryParams = [
  key: string,
  varyKey: string,
  complete: 0 | 1,
  meta: string,
  body: Buffer | null,
  bodyBytes: number,
  sizeBytes: number,
  bodyFile: 0 | 1,
  writtenMs: number,
  storedMs: number,
  lastUsedMs: number,
  deleteAtMs: number,
  writerHost: string,
  writerPid: number,
  writerToken: string,
]

/** The prepared statements of one connection, named as in STATEMENT_SQL. */
export interface Statements {
  insertEntry: Statement<InsertEntryParams>
  markWritten: Statement<[number, number]>
  insertChunk: Statement<[number, number, Buffer]>
  markComplete: Statement<[number, number, number, number, number]>
  selectStoredVariants: Statement<[string], StoredVariantRow>
  selectVariants: Statement<[string], VariantRow>
  selectChunk: Statement<[number, number], { data: Buffer }>
  selectInvalidatedMs: Statement<[string], { at_ms: number }>
  markInvalidated: Statement<[string, number]>
  forgetInvalidated: Statement<[number]>
  markRecent: Statement<[number, number]>
  selectSameVariant: Statement<[string, string, number], SizedRow>
  selectKeyRows: Statement<[string], SizedRow>
  selectComplete: Statement<[number, string], { size_bytes: number; body_bytes: number; body_file: number }>
  updateMeta: Statement<[string, string, number, number, number]>
  selectLeastRecent: Statement<[number, number, number], SizedRow & { last_used_ms: number }>
  selectExpired: Statement<[number, number], SizedRow>
  selectIncomplete: Statement<[number], IncompleteRow & { body_file: number }>
  selectRow: Statement<[number], SizedRow>
  deleteChunks: Statement<[number]>
  deleteEntry: Statement<[number]>
  selectTotals: Statement<[], TotalsRow>
  addTotals: Statement<[number, number]>
  orphanChunks: Statement<[]>
  recountTotals: Statement<[]>
}

/** Prepares every statement once per connection. */
export function prepareStatements(db: Database.Database): Statements {
  const prepared: Record<string, Database.Statement> = {}
  for (const [name, sql] of Object.entries(STATEMENT_SQL)) prepared[name] = db.prepare(sql)
  return prepared as unknown as Statements
}
