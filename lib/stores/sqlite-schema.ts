/** The on-disk layout of SqliteStore: connection settings, the version 1 layout and its migrations. */
import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'

/** Stored in `PRAGMA user_version`; each bump adds a step to MIGRATIONS. */
export const SCHEMA_VERSION = 5

/** How long a write waits for another connection's write lock before failing with SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000

/**
 * Version 1, where every file starts. `size_bytes` is what counts against maxBytes: body bytes plus
 * the bytes of the metadata JSON. `body` holds bodies that never reached chunkBytes; larger ones live in
 * `chunks`. `written_ms` is the last flush of an incomplete row, `stored_ms` the commit (orders variants
 * newest first), `last_used_ms` the last recorded use (eviction order; see version 5).
 * AUTOINCREMENT keeps ids from being reused, so a reader never mistakes new chunks for old ones.
 */
const SCHEMA_V1_SQL = `
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

/**
 * `MIGRATIONS[n - 1]` takes a file from version n to n + 1, inside the open transaction.
 * 1 → 2: the writer of each row (host, pid, per-process token) so that a killed writer's incomplete rows
 * are dropped as soon as its process is gone; an index for the expiry sweep and one for incomplete rows;
 * the LRU index covers size_bytes, so eviction and the totals recount read no table rows.
 * 2 → 3: `body_file` = 1 when the body is a file beside the database (see sqlite-body-files.ts), covered
 * by the eviction and expiry indexes so that removing an entry still reads no table row.
 * 3 → 4: `invalidated`, when each key was last deleted, so that no connection commits a response to a
 * request sent before that (RFC 9111 §4.4 across processes); kept INVALIDATED_KEEP_MS.
 * 4 → 5: `used_bits`, the entries used since their `last_used_ms` (see sqlite-use-bits.ts): a use no
 * longer rewrites the entry's row; `last_used_ms` is the commit, or when eviction last found it used.
 */
const MIGRATIONS: readonly string[] = [
  `
  ALTER TABLE entries ADD COLUMN writer_host TEXT NOT NULL DEFAULT '';
  ALTER TABLE entries ADD COLUMN writer_pid INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE entries ADD COLUMN writer_token TEXT NOT NULL DEFAULT '';
  DROP INDEX entries_lru;
  CREATE INDEX entries_lru ON entries (last_used_ms, id, size_bytes) WHERE complete = 1;
  CREATE INDEX entries_expiry ON entries (delete_at_ms, size_bytes) WHERE complete = 1;
  CREATE INDEX entries_incomplete ON entries (written_ms) WHERE complete = 0;
  `,
  `
  ALTER TABLE entries ADD COLUMN body_file INTEGER NOT NULL DEFAULT 0;
  DROP INDEX entries_lru;
  CREATE INDEX entries_lru ON entries (last_used_ms, id, size_bytes, body_file) WHERE complete = 1;
  DROP INDEX entries_expiry;
  CREATE INDEX entries_expiry ON entries (delete_at_ms, size_bytes, body_file) WHERE complete = 1;
  `,
  `
  CREATE TABLE invalidated (key TEXT PRIMARY KEY, at_ms INTEGER NOT NULL) WITHOUT ROWID;
  CREATE INDEX invalidated_at ON invalidated (at_ms);
  `,
  'CREATE TABLE used_bits (block INTEGER PRIMARY KEY, bits BLOB NOT NULL);',
]

/** A directory, FIFO or device at the path: refused before SQLite opens it. */
export class NotRegularFileError extends Error {
  readonly code = 'SQLITE_CANTOPEN'

  constructor() {
    super('not a regular file')
  }
}

/** The first 16 bytes of every SQLite database file. */
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1')

/** Opens a connection that waits up to `busyTimeoutMs` for locks; creates parent directories. */
export function connect(path: string, busyTimeoutMs: number): Database.Database {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true })
    assertSqliteHeader(path)
  }
  return new Database(path, { timeout: busyTimeoutMs })
}

/**
 * Refuses a non-empty file that does not start like an SQLite database before SQLite opens it,
 * since SQLite would delete a -wal and -shm lying next to it when the failed connection closes; and
 * anything but a regular file (a FIFO's open would block the process until a writer came).
 */
function assertSqliteHeader(path: string): void {
  const stats = statSync(path, { throwIfNoEntry: false })
  if (stats === undefined) return
  if (!stats.isFile()) throw new NotRegularFileError()
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  try {
    const head = Buffer.alloc(SQLITE_HEADER.length)
    const readBytes = readSync(fd, head, 0, head.length, 0)
    if (readBytes > 0 && !head.equals(SQLITE_HEADER)) {
      throw Object.assign(new Error('file has no SQLite header'), { code: 'SQLITE_NOTADB' })
    }
  } finally {
    closeSync(fd)
  }
}

/**
 * Checks the file is ours (before changing anything in it), switches it to WAL, then creates the layout
 * in an empty file or migrates an older one, in one immediate transaction. A file at this version
 * takes no write lock: it opens while another connection holds that lock.
 */
export function prepareSchema(db: Database.Database, path: string): void {
  const version = schemaVersion(db)
  if (path !== ':memory:') db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  if (version !== SCHEMA_VERSION) db.transaction(() => migrate(db)).immediate()
}

function migrate(db: Database.Database): void {
  const version = schemaVersion(db)
  if (version === SCHEMA_VERSION) return
  if (version === 0) db.exec(SCHEMA_V1_SQL)
  for (let from = Math.max(version, 1); from < SCHEMA_VERSION; from++) db.exec(MIGRATIONS[from - 1] as string)
  db.pragma(`user_version = ${SCHEMA_VERSION}`)
}

/**
 * The file's version and whether it has tables, read in one statement: one snapshot, so another
 * process creating the layout meanwhile is seen either before or after (not version 0 with tables).
 */
const VERSION_SQL = `SELECT (SELECT user_version FROM pragma_user_version) AS version,
  (SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table') AS tables`

/** The file's schema version; throws for a newer one, or for tables without a version (not ours). */
function schemaVersion(db: Database.Database): number {
  const { version, tables } = db.prepare(VERSION_SQL).get() as { version: number; tables: number }
  if (version > SCHEMA_VERSION) {
    throw new Error(
      `schema version ${version} is newer than this undici-cache reads (${SCHEMA_VERSION}); ` +
        'upgrade undici-cache or use another path',
    )
  }
  if (version > 0) return version
  if (tables > 0) throw new Error('it is an SQLite database of something else (user_version 0, has tables)')
  return version
}

/** The SQLite result codes that mean the file is damaged or not a database at all. */
export function isCorruption(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT'))
}

/** The write lock (or a read snapshot) was not had within the busy timeout. */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY')
}

/** SQLITE_FULL and SQLITE_BUSY pass: the same write may work later. */
export function isTransient(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'SQLITE_FULL' || isBusy(error)
}
