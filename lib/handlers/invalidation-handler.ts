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
  invalidated: (key: string) => void,
): void {
  if (!invalidatesOnResponse(target.method, statusCode)) return
  const url = targetUrl(target)
  if (url === undefined) return
  const { host } = normalizeHeaders(target.headers)
  for (const invalidatedUrl of invalidationTargets(url, headers)) {
    const key = withHost(keyFromUrl(invalidatedUrl), host)
    if (key === undefined) continue
    invalidated(key)
    quietly(
      (error) => reportStoreError(config.store, 'delete', error),
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
    invalidated: (key: string) => void,
  ) {
    super(downstream, (statusCode, headers) => {
      invalidate(config, target, statusCode, headers, invalidated)
      return forwardedHeaders(headers, cacheStatusValue(config, { fwd: 'method' }))
    })
  }
}
