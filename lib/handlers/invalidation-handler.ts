import type { Dispatcher } from 'undici'
import { reportStoreError } from '../diagnostics.js'
import { cacheStatusValue, quietly } from '../exchange.js'
import { type KeyInput, keyFromUrl, targetUrl, withHost } from '../key.js'
import type { CacheConfig } from '../options.js'
import { invalidatesOnResponse, invalidationTargets } from '../policy/invalidation.js'
import type { Headers } from '../policy/types.js'
import { normalizeHeaders } from '../request-headers.js'
import { afterAnswer } from '../stores/store.js'
import { PassHandler } from './pass-handler.js'
import { redirectHistory } from './redirect-history.js'
import { forwardedHeaders } from './response-headers.js'

/**
 * Told of each key a response invalidates: as its delete is asked for (answering the invalidation's
 * number), when the store failed to delete it, and when the delete has settled.
 */
export interface Invalidated {
  started(key: string): number
  unwritten(key: string, count: number): void
  settled(key: string, count: number): void
}

interface Target extends KeyInput {
  method: string
  headers?: unknown
}

/**
 * The keys a non-error response to an unsafe method invalidates (RFC 9111 §4.4): the target, and
 * same-origin Location / Content-Location. After redirects followed inside the cache (`hops`: the URLs
 * the request went on to), each of those too, the last one's response naming Location and
 * Content-Location; the Host field goes with the first URL only (undici drops it on the way).
 */
function invalidatedKeys(sent: Target, hops: string[], headers: Headers): string[] {
  const target = inOriginForm(sent)
  const url = targetUrl(target)
  if (url === undefined) return []
  const { host } = normalizeHeaders(target.headers)
  const urls = [url, ...hops, ...invalidationTargets(hops.at(-1) ?? url, headers)]
  const keys = urls.map((invalidatedUrl) => {
    const hostNamed = invalidatedUrl === url || hops.length === 0
    return withHost(keyFromUrl(invalidatedUrl), hostNamed ? host : undefined)
  })
  if (hops.length === 0) keys.push(...hostNamedKeys(url, host, headers))
  return [...new Set(keys.filter((key) => key !== undefined))]
}

/**
 * RFC 9112 §3.2.2: a target in absolute form (`http://host/x` as the path) names the target URI,
 * whatever the Host field: it is invalidated as the same request in origin form with that Host.
 */
function inOriginForm(target: Target): Target {
  if (!/^https?:\/\//i.test(target.path)) return target
  try {
    const url = new URL(target.path)
    const headers = { ...normalizeHeaders(target.headers), host: url.host }
    return { ...target, path: `${url.pathname}${url.search}`, headers }
  } catch {
    return target
  }
}

/**
 * RFC 9110 §7.2: with a Host field naming another authority than the address, the target's origin is
 * that authority's, so an absolute Location or Content-Location naming it is same-origin. Each such URL
 * is invalidated as this cache keys it twice: sent to the address with that Host, and sent to the name.
 */
function hostNamedKeys(url: string, host: unknown, headers: Headers): (string | undefined)[] {
  if (typeof host !== 'string' || withHost(url, host) === url) return []
  const named = hostNamedUrl(url, host)
  if (named === undefined) return []
  const address = new URL(url).origin
  return invalidationTargets(named, headers).flatMap((namedTarget) => {
    const { pathname, search } = new URL(namedTarget)
    return [withHost(keyFromUrl(`${address}${pathname}${search}`), host), keyFromUrl(namedTarget)]
  })
}

/** The target URL with its authority replaced by the Host field's; undefined when that is no authority. */
function hostNamedUrl(url: string, host: string): string | undefined {
  const parsed = new URL(url)
  const pathAndQuery = `${parsed.pathname}${parsed.search}`
  try {
    const named = new URL(`${parsed.protocol}//${host}${pathAndQuery}`)
    const onlyAuthority = named.username === '' && `${named.pathname}${named.search}` === pathAndQuery
    return onlyAuthority && named.hash === '' ? named.href : undefined
  } catch {
    return undefined
  }
}

/**
 * RFC 9111 §4.4: a non-error response to an unsafe method invalidates the URIs it names: their stored
 * responses, and (`invalidated`) the requests for them still on their way to the origin.
 */
function invalidate(
  config: CacheConfig,
  target: Target,
  hops: string[],
  statusCode: number,
  headers: Headers,
  invalidated: Invalidated,
): void {
  if (!invalidatesOnResponse(target.method, statusCode)) return
  for (const key of invalidatedKeys(target, hops, headers)) {
    const count = invalidated.started(key)
    const settled = () => invalidated.settled(key, count)
    quietly(
      (error) => {
        reportStoreError(config.store, 'delete', error)
        invalidated.unwritten(key, count)
        settled()
      },
      () => afterAnswer(config.store.delete(key), settled),
      config.serving,
    )
  }
}

/** Forwards an unsafe request and invalidates what its response makes stale. */
export class InvalidationHandler extends PassHandler {
  /** The URLs a redirect handler composed inside the cache visited, when there is one (it adds to it). */
  #history: readonly unknown[] | undefined

  constructor(
    config: CacheConfig,
    target: Target,
    downstream: Dispatcher.DispatchHandler,
    invalidated: Invalidated,
  ) {
    super(downstream, (statusCode, headers) => {
      invalidate(config, target, this.#hops(), statusCode, headers, invalidated)
      return forwardedHeaders(headers, cacheStatusValue(config, { fwd: 'method' }))
    })
  }

  override onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#history = redirectHistory(context)
    super.onRequestStart(controller, context)
  }

  /** The URLs the request went on to after the first, when a redirect was followed inside the cache. */
  #hops(): string[] {
    return (this.#history ?? []).slice(1).map(String)
  }
}
