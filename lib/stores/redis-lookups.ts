import { LruMap } from './lru-map.js'

/** Keys whose recent lookups are kept: the most recently looked up. */
const MAX_KEYS_KEPT = 10_000

/** Lookups kept per key, the latest ones: those of the requests under way for it. */
const MAX_LOOKUPS_PER_KEY = 8

interface Lookup {
  deletions: string
  atMs: number
}

interface KeyLookups {
  kept: Lookup[]
  /** The first lookup dropped to stay within MAX_LOOKUPS_PER_KEY: it saw no deletion a later one missed. */
  firstDropped?: Lookup
  /** When the last dropped lookup was made. */
  lastDroppedMs?: number
}

/**
 * What each key's recent lookups saw of its deletions (`<index>:deleted`, marked by DELETE_SCRIPT), and
 * when they were made. A request is looked up as it starts, so a write of its response checks at commit
 * that no delete came since its lookup, from this machine or another (RFC 9111 §4.4).
 */
export class RedisLookups {
  readonly #byKey = new LruMap<string, KeyLookups>(MAX_KEYS_KEPT)

  looked(key: string, deletions: string, atMs: number): void {
    const lookups = this.#byKey.get(key) ?? { kept: [] }
    lookups.kept.push({ deletions, atMs })
    if (lookups.kept.length > MAX_LOOKUPS_PER_KEY) {
      const dropped = lookups.kept.shift() as Lookup
      lookups.firstDropped ??= dropped
      lookups.lastDroppedMs = dropped.atMs
    }
    this.#byKey.set(key, lookups)
  }

  /**
   * The deletion mark that a request sent at `requestTimeMs` saw: that of the first lookup made since
   * (its own; a later request's lookup, after a delete, would hide the delete). When its own may have
   * been dropped, the first dropped one's: a delete since then keeps the write out, as one since its own
   * would. '-' when there is none (a request sent without a lookup of its own, such as a background
   * revalidation, is not checked).
   */
  deletionsSeen(key: string, requestTimeMs: number): string {
    const lookups = this.#byKey.get(key)
    if (lookups === undefined) return '-'
    const { lastDroppedMs, firstDropped } = lookups
    if (lastDroppedMs !== undefined && lastDroppedMs >= requestTimeMs && firstDropped !== undefined)
      return firstDropped.deletions
    return lookups.kept.find((lookup) => lookup.atMs >= requestTimeMs)?.deletions ?? '-'
  }
}
