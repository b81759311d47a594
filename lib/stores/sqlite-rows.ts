/** What SqliteTables' writes take: a writer's entry, its chunks and commit, and the values of new rows. */
import { THIS_WRITER } from './sqlite-liveness.js'
import type { InsertEntryParams, StoredVariantRow } from './sqlite-statements.js'

/** What a writer knows about the entry it writes. */
export interface EntryDraft {
  key: string
  varyKey: string
  metaJson: string
  metaBytes: number
  deleteAtMs: number
  /** When the request was sent: a key deleted since then does not take the response. */
  requestTimeMs: number
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
  /** The body was written to the entry's file (then `data` is empty). */
  inFile: boolean
}

/** Columns that differ between an incomplete (chunked) and a complete inline entry row. */
export interface EntryRowValues {
  complete: 0 | 1
  body: Buffer | null
  bodyBytes: number
  sizeBytes: number
  storedMs: number
  bodyFile: 0 | 1
}

/** The values of a new incomplete row whose body goes to chunk rows. */
export const CHUNKED_ROW_VALUES: EntryRowValues = {
  complete: 0,
  body: null,
  bodyBytes: 0,
  sizeBytes: 0,
  storedMs: 0,
  bodyFile: 0,
}

/** The values of a new incomplete row whose body goes to a file. */
export const FILE_ROW_VALUES: EntryRowValues = { ...CHUNKED_ROW_VALUES, bodyFile: 1 }

/**
 * The commit's place in its key's newest-first order: now, but always after the key's last commit,
 * so two commits in one millisecond keep their order (the ids of chunked rows say when they began).
 */
export function commitTimeMs(nowMs: number, stored: readonly StoredVariantRow[]): number {
  return stored.reduce((timeMs, row) => Math.max(timeMs, row.stored_ms + 1), nowMs)
}

/** The parameters of a new entry row, written by this process (see sqlite-liveness.ts). */
export function insertEntryParams(args: ChunkArgs, row: EntryRowValues): InsertEntryParams {
  const { draft, nowMs } = args
  const { host, pid, token } = THIS_WRITER
  return [
    draft.key,
    draft.varyKey,
    row.complete,
    draft.metaJson,
    row.body,
    row.bodyBytes,
    row.sizeBytes,
    row.bodyFile,
    nowMs,
    row.storedMs,
    nowMs,
    draft.deleteAtMs,
    host,
    pid,
    token,
  ]
}
