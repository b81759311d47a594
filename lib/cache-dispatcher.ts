import type { Dispatcher } from 'undici'
import { nextSendOrder } from './commit-order.js'
import { keptForRequest } from './credentials.js'
import { asError, reportRevalidationError, reportStoreError } from './diagnostics.js'
import {
  type Collapsed,
  collapsedStatus,
  type DispatchOptions,
  type Exchange,
  policyView,
} from './exchange.js'
import {
  type Flight,
  type FlightOutcome,
  Flights,
  flightKeyOf,
  MAX_RELEASES,
  type Waiter,
} from './flights.js'
import { forwardReason, originOnlyReason } from './forward-reason.js'
import { backgroundHandler } from './handlers/background-handler.js'
import { CountedHandler } from './handlers/counted-handler.js'
import { ForwardHandler } from './handlers/forward-handler.js'
import { type Invalidated, InvalidationHandler } from './handlers/invalidation-handler.js'
import { RelayController } from './handlers/relay-controller.js'
import { respondFromCache } from './handlers/respond.js'
import { type Background, RevalidationHandler } from './handlers/revalidation-handler.js'
import { ServedBody } from './handlers/served-body.js'
import { tellError } from './handlers/tell-error.js'
import { gatewayTimeout, passThrough } from './handlers/uncached-answers.js'
import { WaitingHandler } from './handlers/waiting-handler.js'
import { answeredByOwnOrigin, cacheKey, hasContent, reachedTarget } from './key.js'
import { liveWaiter } from './live-waiter.js'
import { type CacheConfig, type CacheRequestOptions, resolveRequestOptions } from './options.js'
import { ownRequestOptions, withoutCacheOption } from './own-request.js'
import { currentAgeSeconds } from './policy/age.js'
import { requestDirectives } from './policy/cache-control.js'
import type { ForwardReason } from './policy/cache-status.js'
import { answersFromCache } from './policy/conditional.js'
import { isSafeMethod } from './policy/invalidation.js'
import { type ReuseDecision, staleWhileRevalidateAllows } from './policy/lookup.js'
import { isClientConditional, revalidationHeaders } from './policy/revalidation.js'
import { usableEntries } from './policy/storable.js'
import type { StoredResponse } from './policy/types.js'
import { selectVariant } from './policy/vary.js'
import { undiciRefuses } from './request-checks.js'
import { normalizeHeaders, withReplayableHeaders } from './request-headers.js'
import { decideFor, mayWaitOnFlight, reusableFor, staleIfErrorAllowsFor } from './reuse.js'
import { type EntryMeta, type StoredEntry, withEntries } from './stores/store.js'

type Handler = Dispatcher.DispatchHandler

/** How a request re-enters the cache after waiting on an identical one (single flight). */
interface Rerun {
  coalesce: boolean
  collapsed?: Collapsed
  released?: number
  /** The per-request options already read from the first dispatch. */
  requestOptions?: CacheRequestOptions
}

/**
 * The cache's driver: key → lookup → serve / revalidate / forward → store / update /
 * invalidate. Every decision is the policy's; this and the handlers are the only places that do I/O.
 */
export class CacheDispatcher {
  readonly #next: Dispatcher.Dispatch
  readonly #config: CacheConfig
  readonly #flights = new Flights()
  readonly #invalidated: Invalidated = {
    started: (key) => this.#config.invalidations.invalidated(key, Date.now()),
    unwritten: (key, count) => this.#config.invalidations.unwritten(key, count),
    settled: (key, count) => this.#config.invalidations.deleted(key, count),
  }

  /** What undici 8's compose() said of the dispatcher's origin (see answeredByOwnOrigin). */
  readonly #dispatcherOrigin: string | null | undefined

  constructor(next: Dispatcher.Dispatch, config: CacheConfig, dispatcherOrigin?: string | null) {
    this.#next = next
    this.#config = config
    this.#dispatcherOrigin = dispatcherOrigin
  }

  dispatch(opts: DispatchOptions, handler: Handler): boolean {
    const counted = new CountedHandler(handler, this.#config.serving)
    try {
      return this.#start(opts, counted, { coalesce: true })
    } catch (error) {
      counted.over()
      throw error
    }
  }

  #start(opts: DispatchOptions, handler: Handler, rerun: Rerun): boolean {
    const method = opts.method
    // undici's own checks (a path that is no string) fail such a request as they would without the cache
    if (opts.upgrade || method === 'CONNECT' || typeof opts.path !== 'string')
      return this.#next(opts, handler)
    const requestOptions = rerun.requestOptions ?? resolveRequestOptions(opts.cache)
    if (opts.cache !== undefined) opts = withoutCacheOption(opts)
    opts = withReplayableHeaders(opts)
    // refused by undici with its own error, on a miss and on a hit alike (should undici send an unsafe
    // one after all, what it changes is invalidated)
    if (undiciRefuses(opts))
      return isSafeMethod(method) ? this.#next(opts, handler) : this.#invalidating(opts, handler)
    const headers = normalizeHeaders(opts.headers)
    const directives = requestDirectives(headers)
    // RFC 9111 §5.2.1.7: only-if-cached never reaches the origin, whatever else the request asks
    const onlyIfCached = requestOptions?.onlyIfCached === true || directives.onlyIfCached === true
    if (!isSafeMethod(method)) {
      if (onlyIfCached) return gatewayTimeout(this.#config, handler, opts)
      return this.#invalidating(opts, handler)
    }
    const cached =
      this.#config.methods.has(method) &&
      !requestOptions?.bypass &&
      !hasContent(opts.body) &&
      answeredByOwnOrigin(this.#dispatcherOrigin, opts.origin)
    const key = cached ? (requestOptions?.key ?? cacheKey(opts, headers.host)) : undefined
    if (key === undefined)
      return onlyIfCached
        ? gatewayTimeout(this.#config, handler, opts)
        : passThrough(this.#next, this.#config, opts, handler, 'bypass')
    const exchange: Exchange = {
      config: this.#config,
      key,
      request: { method, headers },
      ...this.#sentNow(),
      mayStore: !directives.noStore,
      onlyIfCached,
      opts,
      requestOptions,
      coalesce: rerun.coalesce,
      collapsed: rerun.collapsed,
      released: rerun.released,
      // If-Match, If-Unmodified-Since: for the origin to answer; looked up only for Cache-Status
      originOnly: isClientConditional(headers) && !answersFromCache(headers),
    }
    if (exchange.originOnly && onlyIfCached) return gatewayTimeout(this.#config, handler, exchange.opts)
    return this.#lookup(exchange, handler)
  }

  /** RFC 9111 §4.4: an unsafe request, sent on; a response that says it changed something invalidates. */
  #invalidating(opts: DispatchOptions, handler: Handler): boolean {
    const target = reachedTarget(this.#dispatcherOrigin, opts)
    return this.#next(opts, new InvalidationHandler(this.#config, target, handler, this.#invalidated))
  }

  #lookup(exchange: Exchange, handler: Handler): boolean {
    const { store, invalidations } = this.#config
    const lookedUp = invalidations.lookupStarted()
    let entries: StoredEntry[] | Promise<StoredEntry[]>
    try {
      entries = withEntries(store, exchange.key, allOf)
    } catch (error) {
      return this.#lookupFailed(exchange, handler, error)
    }
    if (Array.isArray(entries)) return this.#afterLookup(exchange, handler, entries, lookedUp)
    entries
      .then(
        (found) => this.#afterLookup(exchange, handler, found, lookedUp),
        (error: unknown) => this.#lookupFailed(exchange, handler, error),
      )
      .catch((error: unknown) => failAsync(handler, error))
    return true
  }

  /** The store failed: the request goes through, unless it may only be answered from the cache (RFC 9111 §5.2.1.7). */
  #lookupFailed(exchange: Exchange, handler: Handler, error: unknown): boolean {
    reportStoreError(this.#config.store, 'get', error)
    if (exchange.onlyIfCached) return gatewayTimeout(this.#config, handler, exchange.opts)
    return passThrough(this.#next, this.#config, exchange.opts, handler, 'miss', 'store-error')
  }

  /** `lookedUp`: what Invalidations#lookupStarted said as the lookup was sent. */
  #afterLookup(exchange: Exchange, handler: Handler, found: StoredEntry[], lookedUp: number): boolean {
    const { request, onlyIfCached, collapsed } = exchange
    const { shared, invalidations, store } = this.#config
    const entries = usableEntries(invalidations.usable(store, exchange.key, found, lookedUp), shared)
    const entry = selectVariant(entries, request.headers)
    if (exchange.originOnly) {
      const reason = originOnlyReason(entries.length, entry && decideFor(exchange, entry))
      return this.#forward(exchange, handler, reason)
    }
    if (!entry) {
      if (onlyIfCached) return gatewayTimeout(this.#config, handler, exchange.opts)
      return this.#toOrigin(exchange, handler, entries.length === 0 ? 'miss' : 'vary-miss')
    }
    // the entry its flight's 304 validated, for the same credentials: with the metadata that gave it
    // (when not written back), or as written back
    if (collapsed?.notModifiedEntryId === entry.id) {
      const meta = collapsed.validated?.entryId === entry.id ? collapsed.validated.meta : entry
      return this.#serveCollapsedOrAsk(exchange, handler, entry, meta)
    }
    // what the flight stored (after a failed revalidation it stored nothing); an entry kept for other
    // credentials is another flight's (RFC 9111 §3.5): it is checked
    const stored = collapsed && !collapsed.staleServed && entry.responseTimeMs >= collapsed.sinceMs
    if (stored && keptForRequest(entry, exchange.request.headers)) {
      return this.#serveCollapsedOrAsk(exchange, handler, entry, entry)
    }
    const decision = decideFor(exchange, entry)
    if (decision.action !== 'revalidate') {
      return this.#serveHit(exchange, handler, entry, decision)
    }
    if (onlyIfCached) return gatewayTimeout(this.#config, handler, exchange.opts)
    if (staleWhileRevalidateAllows(policyView(this.#config, entry), decision, this.#config.shared)) {
      const served = new ServedBody(entry)
      this.#revalidateInBackground(exchange, entry, { removeLater: (remove) => served.afterRead(remove) })
      return this.#serveHit(exchange, handler, served.entry, decision)
    }
    if (collapsed?.staleServed?.entryId === entry.id && staleIfErrorAllowsFor(exchange, entry)) {
      return this.#serveCollapsed(exchange, handler, entry, entry)
    }
    return this.#toOrigin(exchange, handler, forwardReason(decision), entry)
  }

  /**
   * RFC 9111 §4: what a waiter's flight stored or validated serves it only if it may be reused for its
   * own request without validation (not `no-cache`, not stale on arrival, fresh enough for what the
   * request asks); otherwise the waiter asks the origin itself, waiting on no other request.
   */
  #serveCollapsedOrAsk(exchange: Exchange, handler: Handler, entry: StoredEntry, meta: EntryMeta): boolean {
    const decision = decideFor(exchange, meta)
    if (decision.action !== 'revalidate') return this.#serveCollapsed(exchange, handler, entry, meta)
    return this.#send(exchange, handler, forwardReason(decision), entry)
  }

  /** A fresh hit, or a stale one the request or stale-while-revalidate allows (RFC 9211 `hit; ttl`). */
  #serveHit(exchange: Exchange, handler: Handler, entry: StoredEntry, decision: ReuseDecision): boolean {
    const status = { hit: true, ttlSeconds: decision.ttlSeconds }
    return this.#serveStored(exchange, handler, () =>
      respondFromCache(
        exchange,
        handler,
        new RelayController(),
        entry,
        entry,
        decision.ageSeconds,
        status,
        this.#next,
      ),
    )
  }

  /** A waiter served what its flight stored or validated (RFC 9211 `collapsed`). */
  #serveCollapsed(exchange: Exchange, handler: Handler, entry: StoredEntry, meta: StoredResponse): boolean {
    const ageSeconds = currentAgeSeconds(meta, Date.now())
    const status = collapsedStatus(exchange.collapsed, entry.id)
    return this.#serveStored(exchange, handler, () =>
      respondFromCache(exchange, handler, new RelayController(), entry, meta, ageSeconds, status, this.#next),
    )
  }

  /**
   * Answers from the store; a body the store can no longer read (its file removed or damaged since the
   * lookup) throws before anything reached the caller, and the request goes to the origin instead.
   */
  #serveStored(exchange: Exchange, handler: Handler, respond: () => void): boolean {
    try {
      respond()
      return true
    } catch (error) {
      reportStoreError(this.#config.store, 'read', error)
      if (exchange.onlyIfCached) return gatewayTimeout(this.#config, handler, exchange.opts)
      return this.#toOrigin(exchange, handler, 'miss')
    }
  }

  /**
   * Sends the request on, unless an identical one is already on its way and its answer may serve this
   * one: then it waits for it. Sent on, it leads a flight others may wait on, unless one is there.
   */
  #toOrigin(exchange: Exchange, handler: Handler, fwd: ForwardReason, entry?: StoredEntry): boolean {
    if (!exchange.coalesce) return this.#send(exchange, handler, fwd, entry)
    if (!mayWaitOnFlight(exchange, entry)) {
      const led = this.#flights.get(flightKey(exchange)) ? undefined : this.#startFlight(exchange)
      return this.#send(exchange, handler, fwd, entry, led)
    }
    const inFlight = this.#joinable(exchange)
    if (inFlight) {
      const waiting = new WaitingHandler(handler)
      const reuses = (stored: EntryMeta) => reusableFor(exchange, stored)
      const waiter: Waiter = {
        // Re-run on a microtask: outside the leader's handler callbacks, and a throw reaches this waiter only.
        settled: (outcome) => {
          const { startedMs: sinceMs, validated, notModifiedEntryId, staleServed } = inFlight
          const collapsed = { sinceMs, fwd, validated, notModifiedEntryId, staleServed }
          queueMicrotask(() => {
            try {
              this.#rerun(exchange, waiting, collapsed, outcome)
            } catch (error) {
              failAsync(waiting, error)
            }
          })
        },
        reuses,
        live: exchange.released ? undefined : liveWaiter(exchange, waiting, fwd, reuses),
      }
      // its own headersTimeout, until the origin has answered the flight (then it waits for a body)
      const headersTimeout = { ms: exchange.opts.headersTimeout, answered: () => inFlight.answered }
      if (waiting.start((reason) => inFlight.leave(waiter, reason), headersTimeout)) inFlight.join(waiter)
      return true
    }
    return this.#send(exchange, handler, fwd, entry, this.#startFlight(exchange))
  }

  #startFlight(exchange: Exchange): Flight {
    return this.#flights.start(flightKey(exchange), exchange.requestTimeMs, exchange.invalidationCount)
  }

  /**
   * A waiter goes through the cache again: a stored result, or the stale entry a failed revalidation
   * served, is served to it as `collapsed`; otherwise it sends its own request (after a held flight,
   * one the others let go with it may wait on).
   */
  #rerun(exchange: Exchange, handler: Handler, collapsed: Collapsed, outcome: FlightOutcome): void {
    const { requestOptions } = exchange
    const released = outcome === 'held' ? (exchange.released ?? 0) + 1 : undefined
    const rerun: Rerun =
      outcome === 'stored' || outcome === 'stale'
        ? { coalesce: outcome === 'stored', collapsed, requestOptions }
        : { coalesce: released !== undefined && released < MAX_RELEASES, released, requestOptions }
    this.#start(exchange.opts, handler, rerun)
  }

  #send(
    exchange: Exchange,
    handler: Handler,
    fwd: ForwardReason,
    entry?: StoredEntry,
    flight?: Flight,
  ): boolean {
    if (!entry) return this.#forward(exchange, handler, fwd, flight)
    return this.#revalidate(exchange, handler, entry, fwd, flight)
  }

  /** RFC 9111 §4.3.1: a conditional request built from the stored validators. */
  #revalidate(
    exchange: Exchange,
    handler: Handler,
    entry: StoredEntry,
    fwd: ForwardReason,
    flight: Flight | undefined,
    background?: Background,
  ): boolean {
    const relay = new RelayController()
    const opts = ownRequestOptions(exchange.opts, background ? null : flight)
    const onMismatch = () => {
      // a new request, sent now: its answer is not older than an invalidation since the first was sent
      const again = { ...exchange, ...this.#sentNow() }
      const handlerAgain = new ForwardHandler(again, handler, relay, { fwd, flight, next: this.#next })
      this.#next(opts, handlerAgain)
    }
    const revalidation = new RevalidationHandler(exchange, entry, handler, relay, {
      fwd,
      flight,
      next: this.#next,
      background,
      onMismatch,
    })
    const headers = revalidationHeaders(exchange.request.headers, entry, background !== undefined)
    return this.#next({ ...opts, headers }, revalidation)
  }

  /** RFC 5861 §3: one at a time per key, sent at once with the lookup's times. */
  #revalidateInBackground(exchange: Exchange, entry: StoredEntry, background: Background): void {
    if (this.#joinable(exchange)) return
    const flight = this.#flights.start(
      flightKey(exchange),
      exchange.requestTimeMs,
      exchange.invalidationCount,
    )
    const sink = backgroundHandler((error) => reportRevalidationError(exchange.key, error))
    this.#revalidate(exchange, sink, entry, 'stale', flight, background)
  }

  /**
   * The flight for this request's key, unless the key was invalidated since its request was sent
   * (RFC 9111 §4.4, through any interceptor on the store): its response may predate the write.
   */
  #joinable(exchange: Exchange): Flight | undefined {
    const flight = this.#flights.get(flightKey(exchange))
    if (!flight || this.#config.invalidations.since(exchange.key, flight.invalidationCount)) return undefined
    return flight
  }

  /** What an exchange notes when its request is sent (RFC 9111 §4.2.3 request_time; Invalidations; CommitOrder). */
  #sentNow(): Pick<Exchange, 'requestTimeMs' | 'invalidationCount' | 'sentOrder'> {
    const invalidationCount = this.#config.invalidations.count
    return { requestTimeMs: Date.now(), invalidationCount, sentOrder: nextSendOrder() }
  }

  #forward(exchange: Exchange, handler: Handler, fwd: ForwardReason, flight?: Flight): boolean {
    return this.#next(
      ownRequestOptions(exchange.opts, flight),
      new ForwardHandler(exchange, handler, new RelayController(), { fwd, flight, next: this.#next }),
    )
  }
}

const allOf = (entries: StoredEntry[]) => entries

/** A throw on a later turn has no caller to reach but the handler (as undici routes dispatch errors). */
function failAsync(handler: Handler, error: unknown): void {
  tellError(handler, null as unknown as Dispatcher.DispatchController, asError(error))
}

function flightKey(exchange: Exchange): string {
  return flightKeyOf(exchange.request.method, exchange.key, exchange.request.headers.authorization)
}
