import { LruMap } from './lru-map.js'

/** Keys whose last lookup is kept: the most recently looked up. */
const MAX_LOOKUPS_KEPT = 10_000

/**
 * What each key's last lookup saw of its deletions (`<index>:deleted`, counted by DELETE_SCRIPT), and
 * when it was made. A request is looked up as it starts, so a write of its response checks at commit
 * that no delete came since, from this machine or another (RFC 9111 §4.4).
 */
export class RedisLookups {
  readonly #last = new LruMap<string, { deletions: string; atMs: number }>()

  looked(key: string, deletions: string, atMs: number): void {
    this.#last.set(key, { deletions, atMs })
    if (this.#last.size > MAX_LOOKUPS_KEPT) this.#last.delete(this.#last.oldestKey() as string)
  }

  /**
   * The deletion count a request sent at `requestTimeMs` saw: that of the last lookup, when it was not
   * made before the request (then it is this request's own, or a later one's); '-' when unknown.
   */
  deletionsSeen(key: string, requestTimeMs: number): string {
    const last = this.#last.get(key)
    return last !== undefined && last.atMs >= requestTimeMs ? last.deletions : '-'
  }
}
