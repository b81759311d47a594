import { LruMap } from './stores/lru-map.js'
import type { CacheStore, StoredEntry } from './stores/store.js'

/**
 * Keys remembered at most, in each map; past that the oldest is forgotten. A request sent before a
 * forgotten invalidation counts as invalidated; the old entries of a forgotten unwritten one could be
 * served again.
 */
const MAX_KEYS = 10_000

/** An invalidation's delete: its number, when it was asked for, and the count of settled deletes once it settled. */
interface Deletion {
  count: number
  atMs: number
  settledCount: number
}

/** A number for each of the MAX_KEYS keys that last had something happen to them. */
class Recent {
  readonly #values = new Map<string, number>()
  /** The greatest number forgotten to stay within MAX_KEYS: any key may have had it. */
  forgottenMax = 0

  get size(): number {
    return this.#values.size
  }

  get(key: string): number | undefined {
    return this.#values.get(key)
  }

  set(key: string, value: number): void {
    this.#values.delete(key)
    this.#values.set(key, value)
    if (this.#values.size <= MAX_KEYS) return
    const [oldestKey, oldest] = this.#values.entries().next().value as [string, number]
    this.#values.delete(oldestKey)
    this.forgottenMax = Math.max(this.forgottenMax, oldest)
  }

  /** Forgets `key` if it still holds `value` (nothing happened to it since). */
  forget(key: string, value: number): void {
    if (this.#values.get(key) === value) this.#values.delete(key)
  }
}

/**
 * RFC 9111 §4.4: when this cache last invalidated each key, and which invalidations the store failed
 * to write (locked past its timeout, disk full). A response to a request sent before its key's last
 * invalidation may predate the write: it is neither stored nor written back. Entries stored before an
 * invalidation the store failed to write are not served: each lookup deletes them again, and the key
 * is forgotten once that works or none is left.
 */
export class Invalidations {
  /** How many invalidations this cache has made: a request notes it when sent (`count`). */
  #count = 0
  /** The count each key was last invalidated at (a count, not a time: two can share a millisecond). */
  readonly #lastCount = new Recent()
  readonly #unwrittenMs = new Recent()
  /**
   * Each key's last invalidation. An asynchronous store may answer a lookup sent before the delete
   * settles after it (RedisStore re-sends a script Redis forgot behind the commands sent meanwhile), or
   * settle the delete first although its answer came second: such a lookup hides what was stored by then.
   */
  readonly #deletions = new LruMap<string, Deletion>(MAX_KEYS)
  /** How many deletes have settled: a lookup notes it as it is sent (`lookupStarted`). */
  #settledCount = 0
  /** Entries a 304 made unstorable, by key, not served while their removal waits for a read. */
  readonly #retired = new Map<string, Set<StoredEntry['id']>>()

  get count(): number {
    return this.#count
  }

  /**
   * `key` is invalidated, its delete asked for at `nowMs`: lookups sent before deleted() is told do
   * not serve what was stored by then. Answers the invalidation's number, for deleted().
   */
  invalidated(key: string, nowMs: number): number {
    this.#count++
    this.#lastCount.set(key, this.#count)
    this.#deletions.set(key, { count: this.#count, atMs: nowMs, settledCount: Number.POSITIVE_INFINITY })
    return this.#count
  }

  /** The delete of invalidation number `count` has settled (unwritten() was told if it failed). */
  deleted(key: string, count: number): void {
    const deletion = this.#deletions.get(key)
    if (deletion?.count === count) deletion.settledCount = ++this.#settledCount
  }

  /** Noted as a lookup is sent, for usable(). */
  lookupStarted(): number {
    return this.#settledCount
  }

  unwritten(key: string, nowMs: number): void {
    this.#unwrittenMs.set(key, nowMs)
  }

  /** Whether `key` was invalidated since a request for it was sent, when the count was `sentCount`. */
  since(key: string, sentCount: number): boolean {
    if (sentCount === this.#count) return false
    return (this.#lastCount.get(key) ?? this.#lastCount.forgottenMax) > sentCount
  }

  /**
   * RFC 9111 §4.3.4, §5.2.2.7: `id` was updated by a 304 into a response that may not be stored (no-store,
   * or private in a shared cache), and is removed once a response served from it has read its body:
   * until then it is not served. Bounded by MAX_KEYS keys (the oldest is served again once forgotten).
   */
  retire(key: string, id: StoredEntry['id']): void {
    const ids = this.#retired.get(key) ?? new Set()
    ids.add(id)
    this.#retired.delete(key)
    this.#retired.set(key, ids)
    if (this.#retired.size > MAX_KEYS) this.#retired.delete(this.#retired.keys().next().value as string)
  }

  /** The retired entry `id` has been removed from the store. */
  removed(key: string, id: StoredEntry['id']): void {
    const ids = this.#retired.get(key)
    if (!ids?.delete(id) || ids.size > 0) return
    this.#retired.delete(key)
  }

  /**
   * `entries` of `key`, from a lookup sent when lookupStarted() said `lookedUp`, without those retired,
   * and without those stored before an invalidation whose delete had not settled by then, or failed.
   */
  usable(store: CacheStore, key: string, entries: StoredEntry[], lookedUp: number): StoredEntry[] {
    const retired = this.#retired.size === 0 ? undefined : this.#retired.get(key)
    if (retired) entries = entries.filter((entry) => !retired.has(entry.id))
    const deletion = this.#deletions.size === 0 ? undefined : this.#deletions.get(key)
    if (deletion !== undefined && deletion.settledCount > lookedUp)
      entries = entries.filter((entry) => entry.responseTimeMs > deletion.atMs)
    return this.#writtenOnly(store, key, entries)
  }

  #writtenOnly(store: CacheStore, key: string, entries: StoredEntry[]): StoredEntry[] {
    if (this.#unwrittenMs.size === 0) return entries
    const atMs = this.#unwrittenMs.get(key)
    if (atMs === undefined) return entries
    const kept = entries.filter((entry) => entry.responseTimeMs > atMs)
    if (kept.length === entries.length) {
      this.#unwrittenMs.forget(key, atMs)
      return entries
    }
    // deleting removes the newer variants too: they are then a miss, like any invalidated key
    try {
      const deleting = store.delete(key)
      if (deleting === undefined) {
        this.#unwrittenMs.forget(key, atMs)
        return []
      }
      deleting.then(
        () => this.#unwrittenMs.forget(key, atMs),
        () => {},
      )
    } catch {
      // still failing: the old entries stay unused
    }
    return kept
  }
}

/** One Invalidations per store: every interceptor on a store sees the invalidations made through the others. */
const byStore = new WeakMap<CacheStore, Invalidations>()

export function invalidationsOf(store: CacheStore): Invalidations {
  let invalidations = byStore.get(store)
  if (!invalidations) {
    invalidations = new Invalidations()
    byStore.set(store, invalidations)
  }
  return invalidations
}
