import { LruMap } from './lru-map.js'

/** Keys whose recent lookups are kept: the most recently looked up. */
const MAX_KEYS_KEPT = 10_000

/** Runs of lookups kept per key: a key deleted more often than this while a request is under way refuses its write. */
const MAX_RUNS_PER_KEY = 8

/** A deletion mark no lookup sees: a write checked against it is refused. */
const UNKNOWN_MARK = '!'

/** Consecutive lookups of a key that saw the same deletion mark: when the last of them was made. */
interface Run {
  deletions: string
  lastAtMs: number
}

interface KeyLookups {
  runs: Run[]
  /** When the last lookup of the runs dropped beyond MAX_RUNS_PER_KEY was made. */
  droppedUntilMs?: number
}

/**
 * What each key's recent lookups saw of its deletions (`<index>:deleted`, moved on by DELETE_SCRIPT),
 * and when they were made. A request is looked up as it starts, so a write of its response checks at
 * commit that no delete came since its lookup, from this machine or another (RFC 9111 §4.4). Lookups
 * that saw the same mark are one run, so a hot key's many lookups take no room.
 */
export class RedisLookups {
  readonly #byKey = new LruMap<string, KeyLookups>()
  /** When the last lookup of a key forgotten beyond MAX_KEYS_KEPT was made. */
  #forgottenUntilMs = Number.NEGATIVE_INFINITY

  looked(key: string, deletions: string, atMs: number): void {
    const lookups = this.#byKey.get(key) ?? { runs: [] }
    this.#byKey.set(key, lookups)
    if (this.#byKey.size > MAX_KEYS_KEPT) this.#forgetOldestKey()
    const last = lookups.runs.at(-1)
    if (last?.deletions === deletions) {
      last.lastAtMs = Math.max(last.lastAtMs, atMs)
      return
    }
    lookups.runs.push({ deletions, lastAtMs: atMs })
    if (lookups.runs.length > MAX_RUNS_PER_KEY) lookups.droppedUntilMs = lookups.runs.shift()?.lastAtMs
  }

  /**
   * The deletion mark to check a write of a request sent at `requestTimeMs` against: that of the first
   * lookup made since (its own; a later request's lookup, after a delete, would hide the delete), else
   * that of the last one before (a request with no lookup of its own, such as the one sent again after a
   * `304` for another representation: a delete since that lookup refuses it). When those lookups were
   * forgotten, a mark that refuses the write. '-' for a key never looked up: not checked.
   */
  deletionsSeen(key: string, requestTimeMs: number): string {
    const lookups = this.#byKey.get(key)
    if (lookups === undefined) return requestTimeMs <= this.#forgottenUntilMs ? UNKNOWN_MARK : '-'
    if (lookups.droppedUntilMs !== undefined && requestTimeMs <= lookups.droppedUntilMs) return UNKNOWN_MARK
    const run = lookups.runs.find(({ lastAtMs }) => lastAtMs >= requestTimeMs) ?? lookups.runs.at(-1)
    return run?.deletions ?? '-'
  }

  #forgetOldestKey(): void {
    const oldestKey = this.#byKey.oldestKey() as string
    const lastAtMs = this.#byKey.get(oldestKey)?.runs.at(-1)?.lastAtMs ?? Number.NEGATIVE_INFINITY
    this.#byKey.delete(oldestKey)
    this.#forgottenUntilMs = Math.max(this.#forgottenUntilMs, lastAtMs)
  }
}
