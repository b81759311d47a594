/** Who writes an incomplete row, so that another process can tell a killed writer from a live one. */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'

/** An incomplete row nobody wrote to for this long is dropped, whoever wrote it. */
export const STALE_WRITE_MS = 60 * 60 * 1000

/** The writer recorded in a row: pid 0 means unknown (rows from schema version 1). */
export interface WriterIdentity {
  host: string
  pid: number
  /** Random per process, so a later process that got the same pid is not mistaken for the writer. */
  token: string
}

/** This process, as recorded in the rows it writes. */
export const THIS_WRITER: Readonly<WriterIdentity> = {
  host: hostname(),
  pid: process.pid,
  token: randomBytes(8).toString('hex'),
}

/** An incomplete row as the cleanup sees it. */
export interface IncompleteRow {
  id: number
  written_ms: number
  writer_host: string
  writer_pid: number
  writer_token: string
}

/**
 * True when no live writer can finish the row: idle past STALE_WRITE_MS, or written on this host by a
 * process that is gone. Rows from other hosts (or pid namespaces with another host name) wait for the
 * idle limit, since their pids mean nothing here.
 */
export function isAbandoned(row: IncompleteRow, nowMs: number, self: WriterIdentity = THIS_WRITER): boolean {
  if (row.written_ms < nowMs - STALE_WRITE_MS) return true
  if (row.writer_pid <= 0 || row.writer_host !== self.host) return false
  if (row.writer_pid === self.pid) return row.writer_token !== self.token
  return !isProcessAlive(row.writer_pid)
}

/** Signal 0 checks existence only; EPERM means it exists under another user. */
function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}
