import type { LiveWaiter } from './handlers/fan-out.js'
import type { HeaderValue } from './policy/types.js'
import type { EntryMeta, StoredEntry } from './stores/store.js'

/**
 * How a request in flight ended, for the identical requests that waited on it: `stale` when its
 * revalidation failed and the stale entry was served instead (see Flight.staleServed); `held` when the
 * response is being stored but its first caller holds the download (see DownloadPace), so the waiters
 * go again, free to wait on a new flight (Exchange.released).
 */
export type FlightOutcome = 'stored' | 'not-stored' | 'stale' | 'held'

/** Held flights that let a request go (Exchange.released) before it sends its own request. */
export const MAX_RELEASES = 3

/** An entry validated by a 304 but not written back, and the freshened metadata to serve it with. */
export interface Validated {
  entryId: StoredEntry['id']
  meta: EntryMeta
}

/** RFC 5861 §4: the stale entry a failed revalidation served, and why (Cache-Status `fwd-status`, `detail`). */
export interface StaleServed {
  entryId: StoredEntry['id']
  fwdStatus: number | undefined
  detail: string
}

/** A request waiting on the flight: re-run when it settles, unless it is fed the response live. */
export interface Waiter {
  settled: (outcome: FlightOutcome) => void
  /** Whether a response stored as `meta` may answer the waiter's request without validation (RFC 9111 §4). */
  reuses: (meta: EntryMeta) => boolean
  /** Set when the waiter can take the leader's response as it arrives (a plain GET). */
  live?: LiveWaiter
}

/** One request on its way to the origin for a key; identical requests wait on it (single flight). */
export class Flight {
  /** When the flight started (epoch ms): what it stores is at least this fresh. */
  readonly startedMs: number
  /** The store's invalidation count when its request was sent: one since makes it outdated (RFC 9111 §4.4). */
  readonly invalidationCount: number
  /** A stored entry a 304 validated without rewriting it, with the metadata it would have had. */
  validated: Validated | undefined
  /** The stored entry the origin answered 304 for (rewritten or not): its waiters say `fwd-status=304`. */
  notModifiedEntryId: StoredEntry['id'] | undefined
  /** Set when the flight settles `stale`: its waiters may be served the same entry (RFC 5861 §4). */
  staleServed: StaleServed | undefined
  /** The origin answered (a final response, a 304, an error served stale): waiters wait for a body, not headers. */
  answered = false
  readonly #waiters: Waiter[] = []
  readonly #onSettled: () => void
  #settled = false

  constructor(startedMs: number, invalidationCount: number, onSettled: () => void) {
    this.startedMs = startedMs
    this.invalidationCount = invalidationCount
    this.#onSettled = onSettled
  }

  get waiterCount(): number {
    return this.#waiters.length
  }

  /**
   * Whether a waiter waits for the entry `meta` becomes (a Range, its own conditionals, a `cache.ttl`),
   * not to be fed it live, and may reuse it.
   */
  awaitsEntry(meta: EntryMeta): boolean {
    return this.#waiters.some((waiter) => waiter.live === undefined && waiter.reuses(meta))
  }

  /** Called whenever a request joins: the download may have to go on without its first caller. */
  onJoin: (() => void) | undefined

  join(waiter: Waiter): void {
    this.#waiters.push(waiter)
    this.onJoin?.()
  }

  /** Called whenever a waiter leaves: the download may be needed by nobody any more. */
  onLeave: ((reason: Error) => void) | undefined

  /** A waiter that aborted: it is neither fed nor re-run. */
  leave(waiter: Waiter, reason: Error): void {
    const index = this.#waiters.indexOf(waiter)
    if (index < 0) return
    this.#waiters.splice(index, 1)
    this.onLeave?.(reason)
  }

  /** Takes the live-capable waiters that `accept` picks: they are fed the response, not re-run. */
  takeLive(accept: (waiter: LiveWaiter) => boolean): LiveWaiter[] {
    return this.#take(accept).map((waiter) => waiter.live as LiveWaiter)
  }

  /** Lets the live-capable waiters that `accept` picks go now, each to send its own request. */
  releaseLive(accept: (waiter: LiveWaiter) => boolean): void {
    for (const waiter of this.#take(accept)) waiter.settled('not-stored')
  }

  #take(accept: (waiter: LiveWaiter) => boolean): Waiter[] {
    const taken: Waiter[] = []
    for (let index = this.#waiters.length - 1; index >= 0; index--) {
      const waiter = this.#waiters[index] as Waiter
      if (waiter.live && accept(waiter.live)) {
        taken.unshift(waiter)
        this.#waiters.splice(index, 1)
      }
    }
    return taken
  }

  /** Releases every waiter once; later calls do nothing. */
  settle(outcome: FlightOutcome, validated?: Validated): void {
    if (this.#settled) return
    this.#settled = true
    this.validated = validated
    // nobody joins a settled flight; a dead flight the GC has not yet found must not keep its request alive
    this.onJoin = undefined
    this.onLeave = undefined
    this.#onSettled()
    for (const waiter of this.#waiters.splice(0)) waiter.settled(outcome)
  }
}

/** The flights in progress, at most one per primary key. */
export class Flights {
  readonly #byKey = new Map<string, Flight>()

  get(key: string): Flight | undefined {
    return this.#byKey.get(key)
  }

  start(key: string, nowMs: number, invalidationCount: number): Flight {
    const flight = new Flight(nowMs, invalidationCount, () => {
      if (this.#byKey.get(key) === flight) this.#byKey.delete(key)
    })
    this.#byKey.set(key, flight)
    return flight
  }
}

/**
 * The flight a request of `method` for `key` leads or joins. GET and HEAD share entries but not
 * flights: a HEAD's answer stores nothing a GET could use. Requests with other credentials share no
 * flight either: RFC 9111 §3.5 lets a response to a request with Authorization be reused for another
 * only as its directives allow, often after a validation the origin answers for each user's own
 * credentials, and §4 lets one response serve several requests only so.
 */
export function flightKeyOf(method: string, key: string, authorization?: HeaderValue): string {
  const flight = method === 'GET' ? key : `${method} ${key}`
  return authorization === undefined ? flight : `${flight} authorization=${String(authorization)}`
}
