import type { Dispatcher } from 'undici'
import { reportStoreError } from './diagnostics.js'
import { cacheStatusValue, type Exchange } from './exchange.js'
import { ForwardHandler } from './handlers/forward-handler.js'
import { InvalidationHandler } from './handlers/invalidation-handler.js'
import { PassHandler } from './handlers/pass-handler.js'
import { RelayController } from './handlers/relay-controller.js'
import { forwardedHeaders, servedHeaders } from './handlers/response-headers.js'
import { RevalidationHandler } from './handlers/revalidation-handler.js'
import { entryBody, serve } from './handlers/serve.js'
import { cacheKey } from './key.js'
import { type CacheConfig, type CacheRequestOptions, resolveRequestOptions } from './options.js'
import { requestDirectives } from './policy/cache-control.js'
import type { ForwardReason } from './policy/cache-status.js'
import { isSafeMethod } from './policy/invalidation.js'
import { decideReuse, type ReuseDecision } from './policy/lookup.js'
import { conditionalHeaders, isClientConditional } from './policy/revalidation.js'
import type { Headers } from './policy/types.js'
import { selectVariant } from './policy/vary.js'
import { normalizeHeaders, toRequestHeaders } from './request-headers.js'
import type { StoredEntry } from './stores/store.js'

type DispatchOptions = Dispatcher.DispatchOptions & { cache?: unknown }
type Handler = Dispatcher.DispatchHandler

/**
 * The cache's driver: key → lookup → serve / revalidate / forward → store / update /
 * invalidate. Every decision is the policy's; this is the only place that does I/O.
 */
export class CacheDispatcher {
  readonly #next: Dispatcher.Dispatch
  readonly #config: CacheConfig

  constructor(next: Dispatcher.Dispatch, config: CacheConfig) {
    this.#next = next
    this.#config = config
  }

  dispatch(opts: DispatchOptions, handler: Handler): boolean {
    const method = opts.method
    if (opts.upgrade || method === 'CONNECT') return this.#next(opts, handler)
    if (!isSafeMethod(method)) return this.#next(opts, new InvalidationHandler(this.#config, opts, handler))
    const requestOptions = resolveRequestOptions(opts.cache)
    const key = requestOptions?.key ?? cacheKey(opts)
    if (!this.#config.methods.has(method) || requestOptions?.bypass || key === undefined) {
      return this.#pass(opts, handler, 'bypass')
    }
    const headers = normalizeHeaders(opts.headers)
    const exchange: Exchange = {
      config: this.#config,
      key,
      request: { method, headers },
      requestTimeMs: Date.now(),
      mayStore: !requestDirectives(headers).noStore,
    }
    if (isClientConditional(headers)) return this.#forward(exchange, opts, handler, 'request')
    let entries: StoredEntry[] | Promise<StoredEntry[]>
    try {
      entries = this.#config.store.get(key)
    } catch (error) {
      reportStoreError(this.#config.store, 'get', error)
      return this.#pass(opts, handler, 'miss', 'store-error')
    }
    if (Array.isArray(entries)) return this.#afterLookup(exchange, opts, handler, requestOptions, entries)
    entries.then(
      (found) => this.#afterLookup(exchange, opts, handler, requestOptions, found),
      (error: unknown) => {
        reportStoreError(this.#config.store, 'get', error)
        this.#pass(opts, handler, 'miss', 'store-error')
      },
    )
    return true
  }

  #afterLookup(
    exchange: Exchange,
    opts: DispatchOptions,
    handler: Handler,
    requestOptions: CacheRequestOptions | undefined,
    entries: StoredEntry[],
  ): boolean {
    const entry = selectVariant(entries, exchange.request.headers)
    const onlyIfCached =
      requestOptions?.onlyIfCached || requestDirectives(exchange.request.headers).onlyIfCached
    if (!entry) {
      if (onlyIfCached) return this.#gatewayTimeout(handler)
      return this.#forward(exchange, opts, handler, entries.length === 0 ? 'miss' : 'vary-miss')
    }
    const decision = this.#decide(exchange, entry, requestOptions)
    if (decision.action !== 'revalidate') return this.#serveHit(exchange, handler, entry, decision)
    if (onlyIfCached) return this.#gatewayTimeout(handler)
    return this.#revalidate(exchange, opts, handler, entry)
  }

  /** The policy's decision, or a forced lifetime from the request's `cache.ttl`. */
  #decide(exchange: Exchange, entry: StoredEntry, requestOptions?: CacheRequestOptions): ReuseDecision {
    const decision = decideReuse(exchange.request, entry, Date.now(), this.#config.shared)
    const ttl = requestOptions?.ttl
    if (ttl === undefined) return decision
    const ttlSeconds = ttl - decision.ageSeconds
    return { ...decision, lifetimeSeconds: ttl, ttlSeconds, action: ttlSeconds > 0 ? 'fresh' : 'revalidate' }
  }

  #serveHit(exchange: Exchange, handler: Handler, entry: StoredEntry, decision: ReuseDecision): boolean {
    const status = cacheStatusValue(this.#config, { hit: true, ttlSeconds: decision.ttlSeconds })
    serve(handler, new RelayController(), {
      statusCode: entry.statusCode,
      statusMessage: entry.statusMessage,
      headers: servedHeaders(entry.headers, decision.ageSeconds, status, entry.sizeBytes),
      body: exchange.request.method === 'HEAD' ? undefined : entryBody(entry),
    })
    return true
  }

  /** RFC 9111 §4.3.1: a conditional request built from the stored validators. */
  #revalidate(exchange: Exchange, opts: DispatchOptions, handler: Handler, entry: StoredEntry): boolean {
    const relay = new RelayController()
    const headers = { ...toRequestHeaders(exchange.request.headers), ...conditionalHeaders(entry) }
    const onMismatch = () => this.#next(opts, new ForwardHandler(exchange, handler, relay, 'stale'))
    const revalidation = new RevalidationHandler(exchange, entry, handler, relay, onMismatch)
    return this.#next({ ...opts, headers }, revalidation)
  }

  #forward(exchange: Exchange, opts: DispatchOptions, handler: Handler, fwd: ForwardReason): boolean {
    return this.#next(opts, new ForwardHandler(exchange, handler, new RelayController(), fwd))
  }

  #pass(opts: DispatchOptions, handler: Handler, fwd: ForwardReason, detail?: string): boolean {
    const onHeaders = (_statusCode: number, headers: Headers) =>
      forwardedHeaders(headers, cacheStatusValue(this.#config, { fwd, detail }))
    return this.#next(opts, new PassHandler(handler, onHeaders))
  }

  /** RFC 9111 §5.2.1.7: only-if-cached with nothing usable → 504. */
  #gatewayTimeout(handler: Handler): boolean {
    const status = cacheStatusValue(this.#config, { detail: 'only-if-cached' })
    serve(handler, new RelayController(), {
      statusCode: 504,
      statusMessage: 'Gateway Timeout',
      headers: forwardedHeaders({ 'content-length': '0' }, status),
    })
    return true
  }
}
