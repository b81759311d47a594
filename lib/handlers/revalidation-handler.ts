import type { Dispatcher } from 'undici'
import { reportStoreError } from '../diagnostics.js'
import { cacheStatusValue, type Exchange, quietly } from '../exchange.js'
import { currentAgeSeconds } from '../policy/age.js'
import { usefulUntilMs } from '../policy/lookup.js'
import { freshenedHeaders, notModifiedMatches } from '../policy/revalidation.js'
import { canStore, headersToStore } from '../policy/storable.js'
import type { Headers } from '../policy/types.js'
import type { EntryMeta, StoredEntry } from '../stores/store.js'
import { ForwardHandler } from './forward-handler.js'
import type { RelayController } from './relay-controller.js'
import { servedHeaders } from './response-headers.js'
import { entryBody, serve } from './serve.js'

type Outcome = 'forward' | 'not-modified' | 'mismatch'

/** The stored metadata freshened by a 304 (RFC 9111 §4.3.4), with new request/response times. */
export function freshenedMeta(
  exchange: Exchange,
  entry: StoredEntry,
  notModifiedHeaders: Headers,
): EntryMeta {
  const meta: EntryMeta = {
    statusCode: entry.statusCode,
    statusMessage: entry.statusMessage,
    headers: freshenedHeaders(entry.headers, notModifiedHeaders),
    requestTimeMs: exchange.requestTimeMs,
    responseTimeMs: Date.now(),
    varyValues: entry.varyValues,
    varyKey: entry.varyKey,
    deleteAtMs: 0,
  }
  meta.deleteAtMs = usefulUntilMs(meta, exchange.config.shared)
  return meta
}

/**
 * Handles the origin's answer to a conditional request made for a stored entry: a 304 that
 * matches freshens the entry and serves it (RFC 9111 §4.3.3–§4.3.4); any other answer is
 * forwarded and stored like a miss; a 304 for another representation calls `onMismatch`.
 */
export class RevalidationHandler implements Dispatcher.DispatchHandler {
  readonly #exchange: Exchange
  readonly #entry: StoredEntry
  readonly #downstream: Dispatcher.DispatchHandler
  readonly #relay: RelayController
  readonly #forward: ForwardHandler
  readonly #onMismatch: () => void
  #outcome: Outcome = 'forward'
  #notModifiedHeaders: Headers = {}

  constructor(
    exchange: Exchange,
    entry: StoredEntry,
    downstream: Dispatcher.DispatchHandler,
    relay: RelayController,
    onMismatch: () => void,
  ) {
    this.#exchange = exchange
    this.#entry = entry
    this.#downstream = downstream
    this.#relay = relay
    this.#forward = new ForwardHandler(exchange, downstream, relay, 'stale')
    this.#onMismatch = onMismatch
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#forward.onRequestStart(controller, context)
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Headers,
    statusMessage?: string,
  ): void {
    if (statusCode === 304) {
      const matches = notModifiedMatches(this.#entry, { statusCode, headers })
      this.#outcome = matches ? 'not-modified' : 'mismatch'
      this.#notModifiedHeaders = headers
      return
    }
    this.#forward.onResponseStart(controller, statusCode, headers, statusMessage)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#outcome === 'forward') this.#forward.onResponseData(controller, chunk)
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: Headers): void {
    if (this.#outcome === 'forward') this.#forward.onResponseEnd(controller, trailers)
    else if (this.#outcome === 'mismatch') this.#onMismatch()
    else this.#serveFreshened()
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.#forward.onResponseError(controller, error)
  }

  #serveFreshened(): void {
    const { config } = this.#exchange
    const meta = freshenedMeta(this.#exchange, this.#entry, this.#notModifiedHeaders)
    this.#storeFreshened(meta)
    const ageSeconds = currentAgeSeconds(meta, Date.now())
    const status = cacheStatusValue(config, { fwd: 'stale', fwdStatus: 304 })
    serve(this.#downstream, this.#relay, {
      statusCode: meta.statusCode,
      statusMessage: meta.statusMessage,
      headers: servedHeaders(meta.headers, ageSeconds, status, this.#entry.sizeBytes),
      body: this.#exchange.request.method === 'HEAD' ? undefined : entryBody(this.#entry),
    })
  }

  /**
   * Updates the stored entry with what the 304 said; if the 304 makes the response unstorable
   * (e.g. `no-store`, or `private` in a shared cache), the entry is removed instead.
   */
  #storeFreshened(meta: EntryMeta): void {
    const { config, key, request } = this.#exchange
    const stored = {
      ...meta,
      headers: headersToStore(withoutSharedCookies(meta.headers, config.shared), config.shared),
    }
    const decision = canStore({ ...request, method: 'GET' }, stored, config.shared)
    quietly(
      (error) => reportStoreError(config.store, decision.storable ? 'update' : 'delete', error),
      () => (decision.storable ? config.store.update(key, this.#entry.id, stored) : config.store.delete(key)),
    )
  }
}

/** A shared cache never keeps a Set-Cookie, even one that arrives on a 304 (see storable.ts). */
function withoutSharedCookies(headers: Headers, shared: boolean): Headers {
  if (!shared || headers['set-cookie'] === undefined) return headers
  const { 'set-cookie': _dropped, ...rest } = headers
  return rest
}
