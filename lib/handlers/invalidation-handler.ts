import type { Dispatcher } from 'undici'
import { reportStoreError } from '../diagnostics.js'
import { cacheStatusValue, quietly } from '../exchange.js'
import { type KeyInput, keyFromUrl, targetUrl, withHost } from '../key.js'
import type { CacheConfig } from '../options.js'
import { invalidatesOnResponse, invalidationTargets } from '../policy/invalidation.js'
import type { Headers } from '../policy/types.js'
import { normalizeHeaders } from '../request-headers.js'
import { PassHandler } from './pass-handler.js'
import { forwardedHeaders } from './response-headers.js'

/** Told of each key a response invalidates: as it arrives, and when the store failed to delete it. */
export interface Invalidated {
  started(key: string): void
  unwritten(key: string): void
}

interface Target extends KeyInput {
  method: string
  headers?: unknown
}

/**
 * RFC 9111 §4.4: a non-error response to an unsafe method invalidates the URIs it names: their stored
 * responses, and (`invalidated`) the requests for them still on their way to the origin.
 */
function invalidate(
  config: CacheConfig,
  target: Target,
  statusCode: number,
  headers: Headers,
  invalidated: Invalidated,
): void {
  if (!invalidatesOnResponse(target.method, statusCode)) return
  const url = targetUrl(target)
  if (url === undefined) return
  const { host } = normalizeHeaders(target.headers)
  for (const invalidatedUrl of invalidationTargets(url, headers)) {
    const key = withHost(keyFromUrl(invalidatedUrl), host)
    if (key === undefined) continue
    invalidated.started(key)
    quietly(
      (error) => {
        reportStoreError(config.store, 'delete', error)
        invalidated.unwritten(key)
      },
      () => config.store.delete(key),
    )
  }
}

/** Forwards an unsafe request and invalidates what its response makes stale. */
export class InvalidationHandler extends PassHandler {
  constructor(
    config: CacheConfig,
    target: Target,
    downstream: Dispatcher.DispatchHandler,
    invalidated: Invalidated,
  ) {
    super(downstream, (statusCode, headers) => {
      invalidate(config, target, statusCode, headers, invalidated)
      return forwardedHeaders(headers, cacheStatusValue(config, { fwd: 'method' }))
    })
  }
}
