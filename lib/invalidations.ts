import { perStore } from './per-store.js'
import { LruMap } from './stores/lru-map.js'
import type { CacheStore, StoredEntry } from './stores/store.js'

/**
 * Keys remembered at most, in each map; past that the oldest is forgotten. A request sent before a
 * forgotten invalidation counts as invalidated; the old entries of a forgotten failed delete could be
 * served again.
 */
const MAX_KEYS = 10_000

/**
 * A key's last invalidation: its number, when its delete was asked for, whether the store failed to
 * write it, and the clock once a delete of the key worked (infinite until then; see #clock).
 */
interface Deletion {
  count: number
  atMs: number
  failed: boolean
  settledCount: number
}

/** A number for each of the MAX_KEYS keys that last had something happen to them. */
class Recent {
  readonly #values = new Map<string, number>()
  /** The greatest number forgotten to stay within MAX_KEYS: any key may have had it. */
  forgottenMax = 0

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
}

/**
 * RFC 9111 §4.4: when this cache last invalidated each key, and which invalidations the store failed
 * to write (locked past its timeout, disk full). A response to a request sent before its key's last
 * invalidation may predate the write: it is neither stored nor written back, and, until the delete has
 * settled, one stored meanwhile (by another process or machine) is not served. Entries answering
 * requests sent before an invalidation the store failed to write are not served: each lookup that finds
 * them deletes them again, until that works.
 */
export class Invalidations {
  /** How many invalidations this cache has made: a request notes it when sent (`count`). */
  #count = 0
  /** The count each key was last invalidated at (a count, not a time: two can share a millisecond). */
  readonly #lastCount = new Recent()
  /**
   * Each key's last invalidation. An asynchronous store may answer a lookup sent before the delete
   * settles after it (RedisStore re-sends a script Redis forgot behind the commands sent meanwhile), or
   * settle the delete first although its answer came second: such a lookup hides the responses to requests sent by then.
   */
  readonly #deletions = new LruMap<string, Deletion>(MAX_KEYS)
  /**
   * Counts the deletes that settled and the entries retired, in order: a lookup notes it as it is sent
   * (`lookupStarted`), and usable() tells what happened before it from what came after.
   */
  #clock = 0
  /**
   * Entries not to be served, by key, with the clock when each was retired: a 304 made them unstorable
   * (removed once a read is done), or a full answer not stored said they are not suitable (left to
   * expire, or to be replaced: then forgotten, see usable()).
   */
  readonly #retired = new Map<string, Map<StoredEntry['id'], number>>()

  get count(): number {
    return this.#count
  }

  /**
   * `key` is invalidated, its delete asked for at `nowMs`: lookups sent before deleted() is told do
   * not serve responses to requests sent by then. Answers the invalidation's number, for deleted().
   */
  invalidated(key: string, nowMs: number): number {
    this.#count++
    this.#lastCount.set(key, this.#count)
    const deletion = {
      count: this.#count,
      atMs: nowMs,
      failed: false,
      settledCount: Number.POSITIVE_INFINITY,
    }
    this.#deletions.set(key, deletion)
    return this.#count
  }

  /** The store failed to write the delete of invalidation number `count` (locked, disk full). */
  unwritten(key: string, count: number): void {
    const deletion = this.#deletions.get(key)
    if (deletion?.count === count) deletion.failed = true
  }

  /** The delete of invalidation number `count` has settled (unwritten() was told first if it failed). */
  deleted(key: string, count: number): void {
    const deletion = this.#deletions.get(key)
    if (deletion?.count === count && !deletion.failed) this.#settle(deletion)
  }

  #settle(deletion: Deletion): void {
    deletion.failed = false
    deletion.settledCount = ++this.#clock
  }

  /** Noted as a lookup is sent, for usable(). */
  lookupStarted(): number {
    return this.#clock
  }

  /** Whether `key` was invalidated since a request for it was sent, when the count was `sentCount`. */
  since(key: string, sentCount: number): boolean {
    if (sentCount === this.#count) return false
    return (this.#lastCount.get(key) ?? this.#lastCount.forgottenMax) > sentCount
  }

  /**
   * `id` is not served again: RFC 9111 §4.3.4, §5.2.2.7, a 304 updated it into a response that may not
   * be stored (no-store, or private in a shared cache), and it is removed once a response served from
   * it has read its body; or §4.3.3, a full answer to its revalidation was not stored in its place.
   * Bounded by MAX_KEYS keys (the oldest is served again once forgotten).
   */
  retire(key: string, id: StoredEntry['id']): void {
    const ids = this.#retired.get(key) ?? new Map()
    ids.set(id, ++this.#clock)
    this.#retired.delete(key)
    this.#retired.set(key, ids)
    if (this.#retired.size > MAX_KEYS) this.#retired.delete(this.#retired.keys().next().value as string)
  }

  /** Whether `id` under `key` was put aside (retire()). */
  isRetired(key: string, id: StoredEntry['id']): boolean {
    return this.#retired.get(key)?.has(id) === true
  }

  /** The retired entry `id` has been removed from the store. */
  removed(key: string, id: StoredEntry['id']): void {
    const ids = this.#retired.get(key)
    if (!ids?.delete(id) || ids.size > 0) return
    this.#retired.delete(key)
  }

  /**
   * `entries` of `key`, from a lookup sent when lookupStarted() said `lookedUp`, without those retired,
   * and without those answering requests sent before an invalidation whose delete had not settled by
   * then, or failed.
   */
  usable(store: CacheStore, key: string, entries: StoredEntry[], lookedUp: number): StoredEntry[] {
    const retired = this.#retired.size === 0 ? undefined : this.#retired.get(key)
    if (retired) {
      this.#forgetGone(key, retired, entries, lookedUp)
      entries = entries.filter((entry) => !retired.has(entry.id))
    }
    const deletion = this.#deletions.size === 0 ? undefined : this.#deletions.get(key)
    if (deletion === undefined || deletion.settledCount <= lookedUp) return entries
    // an entry whose request was sent before the invalidation may predate it, wherever it was stored
    const kept = entries.filter((entry) => entry.requestTimeMs > deletion.atMs)
    return deletion.failed && kept.length < entries.length
      ? this.#deleteAgain(store, key, deletion, kept)
      : kept
  }

  /**
   * Retired entries the store no longer holds under `key` (replaced or evicted) are forgotten: a lookup
   * sent after they were retired did not find them, and an entry never comes back. Without this, a URL
   * whose every revalidation is answered by a response not stored kept one id more each time.
   */
  #forgetGone(key: string, retired: Map<StoredEntry['id'], number>, found: StoredEntry[], lookedUp: number) {
    for (const [id, retiredAt] of retired) {
      if (retiredAt <= lookedUp && !found.some((entry) => entry.id === id)) retired.delete(id)
    }
    if (retired.size === 0) this.#retired.delete(key)
  }

  /** Entries answering requests sent before an invalidation the store failed to write were found: deletes them again. */
  #deleteAgain(store: CacheStore, key: string, deletion: Deletion, kept: StoredEntry[]): StoredEntry[] {
    // deleting removes the newer variants too: they are then a miss, like any invalidated key
    try {
      const deleting = store.delete(key)
      if (deleting === undefined) {
        this.#settle(deletion)
        return []
      }
      deleting.then(
        () => this.#settle(deletion),
        () => {},
      )
    } catch {
      // still failing: the old entries stay unused
    }
    return kept
  }
}

/** One Invalidations per store: every interceptor on a store sees the invalidations made through the others. */
export const invalidationsOf = perStore(() => new Invalidations())
