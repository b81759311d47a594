import type { Dispatcher } from 'undici'
import { asError, reportStoreError } from '../diagnostics.js'
import type { Exchange } from '../exchange.js'
import { policyView } from '../exchange.js'
import type { FlightOutcome, Validated } from '../flights.js'
import { freshenedMeta, freshenSiblings, stillStored, storeFreshened } from '../freshen.js'
import { currentAgeSeconds } from '../policy/age.js'
import type { CacheStatusParams } from '../policy/cache-status.js'
import { staleIfErrorAllows } from '../policy/lookup.js'
import { hasValidator, notModifiedMatches } from '../policy/revalidation.js'
import type { Headers, StoredResponse } from '../policy/types.js'
import { isPromise, type StoredEntry } from '../stores/store.js'
import { authorizedBy } from './entry-meta.js'
import { ForwardHandler, type ForwardOptions } from './forward-handler.js'
import type { RelayController } from './relay-controller.js'
import { respondFromCache } from './respond.js'
import { progressOf } from './send-progress.js'
import { ServedBody } from './served-body.js'
import { tellError } from './tell-error.js'

type Outcome = 'forward' | 'not-modified' | 'mismatch' | 'stale-if-error'

export interface Background {
  /**
   * Runs the removal of an entry a 304 made unstorable once the stale response served meanwhile has
   * read its body (a body in chunk rows cannot be read once removed).
   */
  removeLater: (remove: () => void) => void
}

export interface RevalidationOptions extends ForwardOptions {
  /** A background revalidation (RFC 5861 §3): update the store, answer nobody. */
  background?: Background
  /** Called when the 304 is for another representation: the request must be repeated unconditionally. */
  onMismatch: () => void
}

// RFC 5861 §4: the errors for which a stale response may be served instead
const STALE_IF_ERROR_STATUSES = new Set([500, 502, 503, 504])

/**
 * Handles the origin's answer to a conditional request made for a stored entry: a 304 that
 * matches freshens the entry and serves it (RFC 9111 §4.3.3–§4.3.4); an error inside the
 * stale-if-error window serves the stale entry (RFC 5861 §4); any other answer is forwarded and
 * stored like a miss; a 304 for another representation calls `onMismatch`.
 */
export class RevalidationHandler implements Dispatcher.DispatchHandler {
  readonly #exchange: Exchange
  readonly #entry: StoredEntry
  readonly #downstream: Dispatcher.DispatchHandler
  readonly #relay: RelayController
  readonly #forward: ForwardHandler
  readonly #options: RevalidationOptions
  #outcome: Outcome = 'forward'
  #responseStarted = false
  #statusCode = 0
  #notModifiedHeaders: Headers = {}

  constructor(
    exchange: Exchange,
    entry: StoredEntry,
    downstream: Dispatcher.DispatchHandler,
    relay: RelayController,
    options: RevalidationOptions,
  ) {
    this.#exchange = exchange
    this.#entry = entry
    this.#downstream = downstream
    this.#relay = relay
    this.#options = options
    // the store may give up on a body without Content-Length only as it arrives
    const onRefused = () => this.#retireIfNotReplaced()
    this.#forward = new ForwardHandler(exchange, downstream, relay, { ...options, onRefused })
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#forward.onRequestStart(controller, context)
  }

  onBodySent(...args: unknown[]): void {
    progressOf(this.#forward).onBodySent?.(...args)
  }

  onRequestSent(): void {
    progressOf(this.#forward).onRequestSent?.()
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Headers,
    statusMessage?: string,
  ): void {
    if (statusCode < 200) {
      this.#forward.onResponseStart(controller, statusCode, headers, statusMessage)
      return
    }
    this.#responseStarted = true
    this.#statusCode = statusCode
    if (statusCode === 304) {
      // a 304 from where a redirect led says nothing about the stored response: asked again unconditionally
      const matches = !this.#forward.redirected && notModifiedMatches(this.#entry, { statusCode, headers })
      this.#outcome = matches ? 'not-modified' : 'mismatch'
      this.#notModifiedHeaders = headers
      // answered for the waiters (a mismatch is asked again: that answer tells them)
      if (matches) this.#answeredFlight()
      return
    }
    if (STALE_IF_ERROR_STATUSES.has(statusCode) && this.#staleIfErrorAllowed()) {
      this.#outcome = 'stale-if-error'
      this.#answeredFlight()
      return
    }
    this.#forward.onResponseStart(controller, statusCode, headers, statusMessage)
    this.#retireIfNotReplaced()
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#outcome === 'forward') this.#forward.onResponseData(controller, chunk)
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: Headers): void {
    if (this.#outcome === 'forward') this.#forward.onResponseEnd(controller, trailers)
    else if (this.#outcome === 'mismatch') this.#options.onMismatch()
    else if (this.#outcome === 'not-modified') this.#serveFreshened()
    else this.#serveStale(`${this.#statusCode}`)
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    // RFC 9110 §8.6: a 304 may name the 200's Content-Length; undici fails it once its header block is
    // whole, which is all of a 304, so the conditional request this cache made does not fail the caller
    if (this.#statusCode === 304 && isLengthMismatch(error)) this.onResponseEnd(controller, {})
    // the caller's own abort ends its request (its handler is told within its abort(), as by undici),
    // unless it left the revalidation to requests waiting on it: they may be served stale
    else if (this.#relay.aborted && !this.#forward.callerGone)
      this.#forward.onResponseError(controller, error)
    // the error response was not going to be served: its body cut short changes nothing
    else if (this.#outcome === 'stale-if-error') this.#serveStale(`${this.#statusCode}`)
    else if (!this.#responseStarted && this.#staleIfErrorAllowed()) this.#serveStale(errorDetail(error))
    else this.#forward.onResponseError(controller, error)
  }

  /**
   * RFC 9111 §4.3.3: a full response to the conditional request says the entry it named is not
   * suitable; when it is not stored in its place (refused at its start, or given up on by the store as
   * it arrived), the entry is not served again through this store object (stale-while-revalidate
   * served it on otherwise). It is left in the store to expire: a
   * delete would take the key's other variants and the responses stored for it meanwhile. Not for a
   * 5xx (the cache may act as if there were no answer), a HEAD's (see freshenFromHead), an entry
   * without validators (its request was not conditional), nor a request with other credentials than
   * the entry's (RFC 9111 §3.5: its answer, a 401 say, speaks for those credentials only).
   */
  #retireIfNotReplaced(): void {
    const { request, config, key } = this.#exchange
    if (this.#statusCode >= 500 || request.method === 'HEAD' || !hasValidator(this.#entry.headers)) return
    if (this.#entry.authorized !== authorizedBy(this.#exchange)) return
    const notStoredBecause = this.#forward.notStoredBecause
    if (notStoredBecause === undefined || SAYS_NOTHING_OF_ENTRY.has(notStoredBecause)) return
    config.invalidations.retire(key, this.#entry.id)
  }

  /** The origin answered the flight: its waiters wait for what that serves, not for headers. */
  #answeredFlight(): void {
    if (this.#options.flight) this.#options.flight.answered = true
  }

  /** Never in the background: nobody waits there for the stale response, and the failure is reported. */
  #staleIfErrorAllowed(): boolean {
    if (this.#options.background || !this.#staleStillServable()) return false
    const { config, request } = this.#exchange
    return staleIfErrorAllows(request, policyView(config, this.#entry), Date.now(), config.shared)
  }

  /**
   * RFC 9111 §4.4: not invalidated by an unsafe request while this one was at the origin; nor put aside
   * meanwhile (a full answer to another revalidation of it was not stored).
   */
  #staleStillServable(): boolean {
    const { config, key, invalidationCount } = this.#exchange
    if (config.invalidations.since(key, invalidationCount)) return false
    return !config.invalidations.isRetired(key, this.#entry.id)
  }

  #serveFreshened(): void {
    const meta = freshenedMeta(this.#exchange, this.#entry, this.#notModifiedHeaders)
    const flight = this.#options.flight
    const collapsed = this.#reusedByWaiters()
    const settle = (outcome: FlightOutcome, validated?: Validated) => flight?.settle(outcome, validated)
    if (flight) flight.notModifiedEntryId = this.#entry.id
    // siblings last: updating one may evict, and the entry served first must not be what goes
    const freshenOthers = () => freshenSiblings(this.#exchange, this.#entry, this.#notModifiedHeaders)
    if (this.#options.background || this.#forward.callerGone) {
      storeFreshened(this.#exchange, this.#entry, meta, settle, this.#options.background?.removeLater)
      freshenOthers()
      if (this.#options.background) this.#endSilently()
      return
    }
    // the entry may have been removed while the request was at the origin: then it is asked for again
    const serve = (entry: StoredEntry | undefined) => {
      if (!entry) {
        this.#options.onMismatch()
        return
      }
      const served = new ServedBody(entry)
      if (!this.#respond(served.entry, meta, { fwd: this.#options.fwd, fwdStatus: 304, collapsed })) return
      storeFreshened(this.#exchange, entry, meta, settle, (remove) => served.afterRead(remove))
      freshenOthers()
    }
    this.#whenLookedUp(serve)
  }

  /**
   * Serves `entry` with `meta`; false when its body could not be opened (a file removed since): nothing
   * reached the caller, and the request is sent again without conditions.
   */
  #respond(entry: StoredEntry, meta: StoredResponse, status: CacheStatusParams): boolean {
    const ageSeconds = currentAgeSeconds(meta, Date.now())
    const { next } = this.#options
    try {
      respondFromCache(this.#exchange, this.#downstream, this.#relay, entry, meta, ageSeconds, status, next)
      return true
    } catch (error) {
      reportStoreError(this.#exchange.config.store, 'read', error)
      this.#options.onMismatch()
      return false
    }
  }

  /** Calls `serve` with the entry if it is still stored (a failed lookup counts as removed). */
  #whenLookedUp(serve: (entry: StoredEntry | undefined) => void): void {
    const { store } = this.#exchange.config
    const lost = (error: unknown) => {
      reportStoreError(store, 'get', error)
      return undefined
    }
    let found: ReturnType<typeof stillStored>
    try {
      found = stillStored(store, this.#exchange.key, this.#entry.id)
    } catch (error) {
      found = lost(error)
    }
    if (isPromise(found))
      Promise.resolve(found)
        .catch(lost)
        .then(serve)
        .catch((error) => this.#fail(error))
    else serve(found)
  }

  /** On a promise of the cache's own: a throw from the caller's handler has nobody to reach (see tellError). */
  #fail(error: unknown): void {
    tellError(this.#forward, this.#relay, asError(error))
  }

  /**
   * RFC 5861 §4: the origin failed; the stale entry is served instead. An entry removed while the
   * request was at the origin (evicted, deleted by another process), or whose body cannot be opened,
   * serves nothing: the request is sent again without conditions, as if there were no stale entry,
   * and its waiters wait for that answer.
   */
  #serveStale(detail: string): void {
    const served = {
      entryId: this.#entry.id,
      fwdStatus: this.#statusCode || undefined,
      detail: `stale-if-error-${detail}`,
    }
    const { flight, fwd } = this.#options
    const settle = () => {
      if (!flight) return
      flight.staleServed = served
      flight.settle('stale')
    }
    const serve = (entry: StoredEntry | undefined) => {
      // gone, or put aside or invalidated since the error's headers came: nothing stale to serve
      if (!entry || !this.#staleStillServable()) {
        this.#options.onMismatch()
        return
      }
      if (this.#forward.callerGone) {
        settle()
        return
      }
      const collapsed = this.#reusedByWaiters()
      const status = { fwd, fwdStatus: served.fwdStatus, collapsed, detail: served.detail }
      if (this.#respond(entry, entry, status)) settle()
    }
    this.#whenLookedUp(serve)
  }

  /** RFC 9211 §2.6: requests wait on this revalidation, so what it serves is reused (said before they look). */
  #reusedByWaiters(): boolean {
    return (this.#options.flight?.waiterCount ?? 0) > 0
  }

  #endSilently(): void {
    this.#downstream.onResponseEnd?.(this.#relay, {})
  }
}

/** A response not stored that still says nothing of the entry: the request forbade storing, it came from another URL, or the key was invalidated meanwhile. */
const SAYS_NOTHING_OF_ENTRY: ReadonlySet<string> = new Set(['request-no-store', 'redirected', 'invalidated'])

function isLengthMismatch(error: Error): boolean {
  return (error as Error & { code?: unknown }).code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH'
}

/** A short token naming a connection error for Cache-Status `detail`. */
function errorDetail(error: Error): string {
  const code = (error as Error & { code?: unknown }).code
  return typeof code === 'string' ? code.toLowerCase() : 'error'
}
