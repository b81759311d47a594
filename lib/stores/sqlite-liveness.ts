/** Who writes an incomplete row, so that another process can tell a killed writer from a live one. */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'

/** An incomplete row nobody wrote to for this long is dropped, whoever wrote it. */
export const STALE_WRITE_MS = 60 * 60 * 1000

/** The writer recorded in a row: pid 0 means unknown (rows from schema version 1). */
export interface WriterIdentity {
  host: string
  pid: number
  /** Tells this process from an earlier one that had the same pid (see processToken). */
  token: string
}

/** This process, as recorded in the rows it writes. */
export const THIS_WRITER: Readonly<WriterIdentity> = {
  host: hostname(),
  pid: process.pid,
  token: processToken(),
}

/**
 * On Linux, the boot id and the process start time (clock ticks since boot): the same in every
 * worker thread, different for any later process with this pid. Elsewhere a random value, which
 * worker threads do not share: a store in one thread then drops another thread's unfinished writes.
 */
export function processToken(procDir = '/proc'): string {
  try {
    const bootId = readFileSync(`${procDir}/sys/kernel/random/boot_id`, 'utf8').trim()
    const stat = readFileSync(`${procDir}/self/stat`, 'utf8')
    const startTicks = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
    return `${bootId}:${startTicks}`
  } catch {
    return randomBytes(8).toString('hex')
  }
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
