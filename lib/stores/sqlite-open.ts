/** Opens a store file without throwing: a fault becomes a failure, a corrupt file may be replaced. */
import { existsSync, renameSync } from 'node:fs'
import { BODY_DIR_SUFFIX, realFile } from './sqlite-body-files.js'
import type { OnCorrupt } from './sqlite-options.js'
import { isCorruption, NotRegularFileError } from './sqlite-schema.js'
import { SqliteTables } from './sqlite-tables.js'

/** The open database, or why there is none. */
export type OpenResult =
  | { tables: SqliteTables; corruptCopyPath?: string; failure?: undefined }
  | { tables?: undefined; corruptCopyPath?: string; failure: Error }

/**
 * Opens `path`; with 'recreate', a corrupt file is moved to `<path>.corrupt-<nowMs>` and a new one made.
 * `waitForLocks` false: a lock another connection holds fails the open at once.
 */
export function openTables(
  path: string,
  onCorrupt: OnCorrupt,
  nowMs: number,
  waitForLocks = true,
): OpenResult {
  try {
    return { tables: new SqliteTables(path, nowMs, waitForLocks) }
  } catch (error) {
    if (onCorrupt === 'recreate' && isCorruption(error)) return recreate(path, error, nowMs, waitForLocks)
    return { failure: unusable(path, error) }
  }
}

/**
 * Codes of faults of the machine rather than of the file, which may pass: a lock held, a full disk,
 * out of descriptors or memory, an I/O error, permissions or a read-only mount an operator may change.
 */
const PASSING_CODES = new Set([
  'ENOSPC',
  'EDQUOT',
  'EMFILE',
  'ENFILE',
  'ENOMEM',
  'EIO',
  'EBUSY',
  'EAGAIN',
  'EACCES',
  'EPERM',
  'EROFS',
  'ESTALE',
  'ENOTCONN',
  'ETIMEDOUT',
])
const PASSING_SQLITE_CODES = [
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_FULL',
  'SQLITE_IOERR',
  'SQLITE_CANTOPEN',
  'SQLITE_READONLY',
  'SQLITE_NOMEM',
  'SQLITE_PERM',
  'SQLITE_PROTOCOL',
]

/**
 * Whether an open that failed may work when tried again. A file that is damaged, not SQLite, another
 * program's or of a newer schema stays so, as does a directory or FIFO at the path: no.
 */
export function mayPass(failure: Error): boolean {
  if (failure.cause instanceof NotRegularFileError) return false
  const code = (failure.cause as { code?: unknown } | null | undefined)?.code
  if (typeof code !== 'string') return false
  return PASSING_CODES.has(code) || PASSING_SQLITE_CODES.some((prefix) => code.startsWith(prefix))
}

/**
 * Moves the corrupt file aside, says so, and opens an empty one in its place. When that open fails (a
 * full disk, say), the result still says where the file went: a later try opens the new one.
 */
function recreate(path: string, corruption: unknown, nowMs: number, waitForLocks: boolean): OpenResult {
  // the file a symbolic link names, with its -wal and bodies: the link stays and names the new file
  const file = realFile(path)
  const corruptCopyPath = `${file}.corrupt-${nowMs}`
  try {
    moveAside(file, corruptCopyPath)
  } catch (error) {
    return { failure: unusable(path, error) }
  }
  process.emitWarning(
    `undici-cache: ${path} was corrupt (${describe(corruption)}); moved it to ${corruptCopyPath} ` +
      'and started an empty cache',
    { code: 'UNDICI_CACHE_STORE_RECREATED' },
  )
  try {
    return { tables: new SqliteTables(path, nowMs, waitForLocks), corruptCopyPath }
  } catch (error) {
    return { failure: unusable(path, error), corruptCopyPath }
  }
}

/**
 * Renames the file, its WAL and shared-memory files (so no old WAL frame meets the new file) and its
 * body files (whose names the new file's entry ids will reuse).
 */
function moveAside(path: string, copyPath: string): void {
  for (const suffix of ['', '-wal', '-shm', BODY_DIR_SUFFIX]) {
    if (existsSync(path + suffix)) renameSync(path + suffix, copyPath + suffix)
  }
}

/** The error every call of a store that could not open throws. */
export function unusable(path: string, cause: unknown): Error {
  return new Error(`SqliteStore cannot use ${path}: ${describe(cause)}`, { cause })
}

/** An error's message, with its code when it has one (SQLITE_NOTADB, EACCES, ...). */
function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message
}
