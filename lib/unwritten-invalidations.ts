import type { CacheStore, StoredEntry } from './stores/store.js'

/** Keys remembered at most; past that the oldest is forgotten (its old entries could be served again). */
const MAX_KEYS = 10_000

/**
 * RFC 9111 §4.4: the keys whose invalidation the store failed to write (locked past its timeout, disk
 * full), with when. Entries stored before that are not served: each lookup deletes them again, and the
 * key is forgotten once that works or none is left. Entries stored since are served as usual.
 */
export class UnwrittenInvalidations {
  readonly #atMs = new Map<string, number>()

  add(key: string, nowMs: number): void {
    this.#atMs.delete(key)
    this.#atMs.set(key, nowMs)
    if (this.#atMs.size > MAX_KEYS) this.#atMs.delete(this.#atMs.keys().next().value as string)
  }

  /** `entries` of `key` without those stored before its unwritten invalidation. */
  usable(store: CacheStore, key: string, entries: StoredEntry[]): StoredEntry[] {
    if (this.#atMs.size === 0) return entries
    const atMs = this.#atMs.get(key)
    if (atMs === undefined) return entries
    const kept = entries.filter((entry) => entry.responseTimeMs > atMs)
    if (kept.length === entries.length) {
      this.#atMs.delete(key)
      return entries
    }
    // deleting removes the newer variants too: they are then a miss, like any invalidated key
    try {
      const deleting = store.delete(key)
      if (deleting === undefined) {
        this.#atMs.delete(key)
        return []
      }
      deleting.then(
        () => {
          if (this.#atMs.get(key) === atMs) this.#atMs.delete(key)
        },
        () => {},
      )
    } catch {
      // still failing: the old entries stay unused
    }
    return kept
  }
}
