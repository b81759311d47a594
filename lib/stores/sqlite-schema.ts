/** The SQLite schema of SqliteStore and every statement that touches it. */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'

/** Stored in `PRAGMA user_version`; bump when the layout changes. */
export const SCHEMA_VERSION = 1

/** An incomplete row nobody wrote to for this long belongs to a killed writer. */
export const STALE_WRITE_MS = 60 * 60 * 1000

const BUSY_TIMEOUT_MS = 5000

/**
 * `size_bytes` is what counts against maxBytes: body bytes plus the bytes of the metadata JSON.
 * `body` holds bodies that never reached chunkBytes; larger ones live in `chunks`.
 * `written_ms` is the last flush of an incomplete row (stale ones are dropped on open), `stored_ms`
 * the commit (orders variants newest first), `last_used_ms` the last recorded use (eviction order).
 * AUTOINCREMENT keeps ids from being reused, so a reader never mistakes new chunks for old ones.
 */
const SCHEMA_SQL = `
CREATE TABLE entries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL,
  vary_key TEXT NOT NULL,
  complete INTEGER NOT NULL DEFAULT 0,
  meta TEXT NOT NULL,
  body BLOB,
  body_bytes INTEGER NOT NULL DEFAULT 0,
  size_bytes INTEGER NOT NULL DEFAULT 0,
  written_ms INTEGER NOT NULL,
  stored_ms INTEGER NOT NULL DEFAULT 0,
  last_used_ms INTEGER NOT NULL DEFAULT 0,
  delete_at_ms INTEGER NOT NULL
);
CREATE INDEX entries_key ON entries (key, complete);
CREATE INDEX entries_lru ON entries (last_used_ms) WHERE complete = 1;
CREATE TABLE chunks (
  entry_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (entry_id, seq)
);
CREATE TABLE totals (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  bytes INTEGER NOT NULL,
  entries INTEGER NOT NULL
);
INSERT INTO totals (id, bytes, entries) VALUES (1, 0, 0);
`

/** Drops what killed writers left behind, then recounts the totals. */
const CLEANUP_SQL = {
  staleEntries: 'DELETE FROM entries WHERE complete = 0 AND written_ms < ?',
  orphanChunks: 'DELETE FROM chunks WHERE entry_id NOT IN (SELECT id FROM entries)',
  totals: `UPDATE totals SET
    bytes = (SELECT COALESCE(SUM(size_bytes), 0) FROM entries WHERE complete = 1),
    entries = (SELECT COUNT(*) FROM entries WHERE complete = 1)
    WHERE id = 1`,
}

/** Opens (creating if needed) a store database: pragmas, schema, cleanup of killed writers. */
function openDatabase(path: string, nowMs: number): Database.Database {
  const inMemory = path === ':memory:'
  if (!inMemory) mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path)
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`)
    if (!inMemory) db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.transaction(prepareTables).immediate(db, path, nowMs)
  } catch (error) {
    db.close()
    throw error
  }
  return db
}

function prepareTables(db: Database.Database, path: string, nowMs: number): void {
  const version = db.pragma('user_version', { simple: true })
  if (version === 0) {
    db.exec(SCHEMA_SQL)
    db.pragma(`user_version = ${SCHEMA_VERSION}`)
  } else if (version !== SCHEMA_VERSION) {
    throw new Error(`undici-cache: ${path} has schema version ${version}, this store reads ${SCHEMA_VERSION}`)
  }
  db.prepare(CLEANUP_SQL.staleEntries).run(nowMs - STALE_WRITE_MS)
  db.prepare(CLEANUP_SQL.orphanChunks).run()
  db.prepare(CLEANUP_SQL.totals).run()
}

/** One row of `entries` as `get` reads it. */
export interface VariantRow {
  id: number
  meta: string
  body: Buffer | null
  body_bytes: number
  last_used_ms: number
}

/** A row about to be removed; `complete` rows count in the totals. */
export interface SizedRow {
  id: number
  size_bytes: number
  complete: number
}

/** Running totals of the complete entries. */
export interface TotalsRow {
  bytes: number
  entries: number
}

/** Every statement the store runs, prepared once. */
function prepareStatements(db: Database.Database) {
  return {
    insertEntry: db.prepare<Record<string, unknown>>(
      `INSERT INTO entries (key, vary_key, complete, meta, body, body_bytes, size_bytes,
         written_ms, stored_ms, last_used_ms, delete_at_ms)
       VALUES (@key, @varyKey, @complete, @metaJson, @body, @bodyBytes, @sizeBytes,
         @nowMs, @storedMs, @nowMs, @deleteAtMs)`,
    ),
    markWritten: db.prepare<[number, number]>(
      'UPDATE entries SET written_ms = ? WHERE id = ? AND complete = 0',
    ),
    insertChunk: db.prepare<[number, number, Buffer]>(
      'INSERT INTO chunks (entry_id, seq, data) VALUES (?, ?, ?)',
    ),
    markComplete: db.prepare<[number, number, number, number, number]>(
      `UPDATE entries SET complete = 1, body_bytes = ?, size_bytes = ?, stored_ms = ?, last_used_ms = ?
       WHERE id = ? AND complete = 0`,
    ),
    selectVariants: db.prepare<[string], VariantRow>(
      `SELECT id, meta, body, body_bytes, last_used_ms FROM entries
       WHERE key = ? AND complete = 1 ORDER BY stored_ms DESC, id DESC`,
    ),
    selectChunk: db.prepare<[number, number], { data: Buffer }>(
      'SELECT data FROM chunks WHERE entry_id = ? AND seq = ?',
    ),
    markUsed: db.prepare<[number, number]>('UPDATE entries SET last_used_ms = ? WHERE id = ?'),
    selectSameVariant: db.prepare<[string, string, number], SizedRow>(
      `SELECT id, size_bytes, complete FROM entries
       WHERE key = ? AND complete = 1 AND vary_key = ? AND id != ?`,
    ),
    selectKeyRows: db.prepare<[string], SizedRow>(
      'SELECT id, size_bytes, complete FROM entries WHERE key = ?',
    ),
    selectComplete: db.prepare<[number, string], { size_bytes: number; body_bytes: number }>(
      'SELECT size_bytes, body_bytes FROM entries WHERE id = ? AND key = ? AND complete = 1',
    ),
    updateMeta: db.prepare<[string, string, number, number, number]>(
      'UPDATE entries SET meta = ?, vary_key = ?, delete_at_ms = ?, size_bytes = ? WHERE id = ?',
    ),
    selectLeastRecent: db.prepare<[number], SizedRow>(
      `SELECT id, size_bytes, complete FROM entries
       WHERE complete = 1 AND id != ? ORDER BY last_used_ms, id LIMIT 1`,
    ),
    deleteChunks: db.prepare<[number]>('DELETE FROM chunks WHERE entry_id = ?'),
    deleteEntry: db.prepare<[number]>('DELETE FROM entries WHERE id = ?'),
    selectTotals: db.prepare<[], TotalsRow>('SELECT bytes, entries FROM totals WHERE id = 1'),
    addTotals: db.prepare<[number, number]>(
      'UPDATE totals SET bytes = bytes + ?, entries = entries + ? WHERE id = 1',
    ),
  }
}

type Statements = ReturnType<typeof prepareStatements>

/** What a writer knows about the entry it writes. */
export interface EntryDraft {
  key: string
  varyKey: string
  metaJson: string
  metaBytes: number
  deleteAtMs: number
}

/** Limits that eviction enforces after each commit. */
export interface EvictionLimits {
  maxBytes: number
  maxEntries: number
}

/** One chunk row to append; `entryId` is undefined until the entry row exists. */
export interface ChunkArgs {
  draft: EntryDraft
  entryId: number | undefined
  seq: number
  data: Buffer
  nowMs: number
}

/** The end of a write: `data` is the inline body (no entry row yet) or the last chunk (maybe empty). */
export interface CommitArgs extends ChunkArgs {
  bodyBytes: number
  limits: EvictionLimits
}

/** Columns that differ between an incomplete (chunked) and a complete inline entry row. */
interface EntryRowValues {
  complete: 0 | 1
  body: Buffer | null
  bodyBytes: number
  sizeBytes: number
  storedMs: number
}

/** The database of one SqliteStore; every write runs in an immediate transaction. */
export class SqliteTables {
  readonly #db: Database.Database
  readonly #sql: Statements
  readonly #append: Database.Transaction<(args: ChunkArgs) => number | undefined>
  readonly #commit: Database.Transaction<(args: CommitArgs) => void>
  readonly #removeKey: Database.Transaction<(key: string) => void>
  readonly #removeIncomplete: Database.Transaction<(entryId: number) => void>
  readonly #update: Database.Transaction<(id: number, draft: EntryDraft) => void>
  #open = true

  constructor(path: string, nowMs: number) {
    this.#db = openDatabase(path, nowMs)
    this.#sql = prepareStatements(this.#db)
    this.#append = this.#db.transaction((args: ChunkArgs) => this.#appendRows(args))
    this.#commit = this.#db.transaction((args: CommitArgs) => this.#commitRows(args))
    this.#removeKey = this.#db.transaction((key: string) => this.#removeKeyRows(key))
    this.#removeIncomplete = this.#db.transaction((entryId: number) =>
      this.#remove({ id: entryId, size_bytes: 0, complete: 0 }),
    )
    this.#update = this.#db.transaction((id: number, draft: EntryDraft) => this.#updateRow(id, draft))
  }

  /** Appends one chunk row, creating the incomplete entry row first; undefined when that row is gone. */
  appendChunk(args: ChunkArgs): number | undefined {
    this.assertOpen()
    return this.#append.immediate(args)
  }

  /** Makes an entry complete, replaces its variant, then evicts least recently used entries. */
  commit(args: CommitArgs): void {
    this.assertOpen()
    this.#commit.immediate(args)
  }

  /** Drops an incomplete entry row and its chunks. */
  discard(entryId: number): void {
    this.assertOpen()
    this.#removeIncomplete.immediate(entryId)
  }

  /** Drops every row under `key`, complete or not. */
  deleteKey(key: string): void {
    this.assertOpen()
    this.#removeKey.immediate(key)
  }

  /** Replaces the metadata of a complete entry under `draft.key`; no-op when it is gone. */
  updateMeta(id: number, draft: EntryDraft): void {
    this.assertOpen()
    this.#update.immediate(id, draft)
  }

  /** Complete entries under `key`, newest first. */
  variants(key: string): VariantRow[] {
    this.assertOpen()
    return this.#sql.selectVariants.all(key)
  }

  /** One chunk of a body, undefined when it is gone. */
  chunk(entryId: number, seq: number): Buffer | undefined {
    this.assertOpen()
    return this.#sql.selectChunk.get(entryId, seq)?.data
  }

  /** Records a use of an entry for eviction order. */
  markUsed(entryId: number, nowMs: number): void {
    this.assertOpen()
    this.#sql.markUsed.run(nowMs, entryId)
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

  #appendRows(args: ChunkArgs): number | undefined {
    let entryId = args.entryId
    if (entryId === undefined) {
      entryId = this.#insertEntry(args, { complete: 0, body: null, bodyBytes: 0, sizeBytes: 0, storedMs: 0 })
    } else if (this.#sql.markWritten.run(args.nowMs, entryId).changes === 0) {
      return undefined
    }
    this.#sql.insertChunk.run(entryId, args.seq, args.data)
    return entryId
  }

  #commitRows(args: CommitArgs): void {
    const sizeBytes = args.bodyBytes + args.draft.metaBytes
    const entryId =
      args.entryId === undefined
        ? this.#insertInline(args, sizeBytes)
        : this.#completeChunked(args, args.entryId, sizeBytes)
    if (entryId === undefined) return
    this.#removeOtherVariants(args.draft, entryId)
    this.#sql.addTotals.run(sizeBytes, 1)
    this.#evict({ id: entryId, size_bytes: sizeBytes, complete: 1 }, args.limits)
  }

  #insertInline(args: CommitArgs, sizeBytes: number): number {
    const row: EntryRowValues = {
      complete: 1,
      body: args.data,
      bodyBytes: args.bodyBytes,
      sizeBytes,
      storedMs: args.nowMs,
    }
    return this.#insertEntry(args, row)
  }

  /** Flips the row to complete with its last chunk; undefined when the row is gone. */
  #completeChunked(args: CommitArgs, entryId: number, sizeBytes: number): number | undefined {
    const { nowMs } = args
    const changes = this.#sql.markComplete.run(args.bodyBytes, sizeBytes, nowMs, nowMs, entryId).changes
    if (changes === 0) return undefined
    if (args.data.length > 0) this.#sql.insertChunk.run(entryId, args.seq, args.data)
    return entryId
  }

  #insertEntry(args: ChunkArgs, row: EntryRowValues): number {
    const { draft, nowMs } = args
    const params = { key: draft.key, varyKey: draft.varyKey, metaJson: draft.metaJson, nowMs, ...row }
    return Number(this.#sql.insertEntry.run({ ...params, deleteAtMs: draft.deleteAtMs }).lastInsertRowid)
  }

  #removeOtherVariants(draft: EntryDraft, keepId: number): void {
    for (const row of this.#sql.selectSameVariant.all(draft.key, draft.varyKey, keepId)) this.#remove(row)
  }

  /** Removes least recently used entries while over a limit; `keep` only when it alone is too big. */
  #evict(keep: SizedRow, limits: EvictionLimits): void {
    const totals = this.#sql.selectTotals.get() as TotalsRow
    while (totals.bytes > limits.maxBytes || totals.entries > limits.maxEntries) {
      const row = this.#sql.selectLeastRecent.get(keep.id) ?? keep
      this.#remove(row)
      totals.bytes -= row.size_bytes
      totals.entries -= 1
      if (row === keep) return
    }
  }

  #removeKeyRows(key: string): void {
    for (const row of this.#sql.selectKeyRows.all(key)) this.#remove(row)
  }

  #updateRow(id: number, draft: EntryDraft): void {
    const row = this.#sql.selectComplete.get(id, draft.key)
    if (row === undefined) return
    const sizeBytes = row.body_bytes + draft.metaBytes
    this.#sql.updateMeta.run(draft.metaJson, draft.varyKey, draft.deleteAtMs, sizeBytes, id)
    this.#sql.addTotals.run(sizeBytes - row.size_bytes, 0)
    this.#removeOtherVariants(draft, id)
  }

  #remove(row: SizedRow): void {
    this.#sql.deleteChunks.run(row.id)
    this.#sql.deleteEntry.run(row.id)
    if (row.complete === 1) this.#sql.addTotals.run(-row.size_bytes, -1)
  }
}
