import { LruMap } from './lru-map.js'

/** Keys whose recent lookups are kept: the most recently looked up. */
const MAX_KEYS_KEPT = 10_000

/** Lookups kept per key, the latest ones: those of the requests under way for it. */
const MAX_LOOKUPS_PER_KEY = 8

interface Lookup {
  deletions: string
  atMs: number
}

/**
 * What each key's recent lookups saw of its deletions (`<index>:deleted`, counted by DELETE_SCRIPT), and
 * when they were made. A request is looked up as it starts, so a write of its response checks at commit
 * that no delete came since its lookup, from this machine or another (RFC 9111 §4.4).
 */
export class RedisLookups {
  readonly #byKey = new LruMap<string, Lookup[]>(MAX_KEYS_KEPT)

  looked(key: string, deletions: string, atMs: number): void {
    const lookups = this.#byKey.get(key) ?? []
    lookups.push({ deletions, atMs })
    if (lookups.length > MAX_LOOKUPS_PER_KEY) lookups.shift()
    this.#byKey.set(key, lookups)
  }

  /**
   * The deletion count that a request sent at `requestTimeMs` saw: that of the first lookup made since
   * (its own; a later request's lookup, after a delete, would hide the delete); '-' when there is none
   * (a request sent without a lookup of its own, such as a background revalidation, is not checked).
   */
  deletionsSeen(key: string, requestTimeMs: number): string {
    const own = this.#byKey.get(key)?.find((lookup) => lookup.atMs >= requestTimeMs)
    return own === undefined ? '-' : own.deletions
  }
}
