/** The answers that use nothing stored: the request sent on as it is, or a 504 for only-if-cached. */
import type { Dispatcher } from 'undici'
import { cacheStatusValue } from '../exchange.js'
import type { CacheConfig } from '../options.js'
import { dropUnsentBody } from '../own-request.js'
import type { ForwardReason } from '../policy/cache-status.js'
import type { Headers } from '../policy/types.js'
import { PassHandler } from './pass-handler.js'
import { RelayController } from './relay-controller.js'
import { forwardedHeaders } from './response-headers.js'
import { serve } from './serve.js'

/** Sends the request on as it is; Cache-Status says why the cache took no part (RFC 9211 §2.2). */
export function passThrough(
  next: Dispatcher.Dispatch,
  config: CacheConfig,
  opts: Dispatcher.DispatchOptions,
  handler: Dispatcher.DispatchHandler,
  fwd: ForwardReason,
  detail?: string,
): boolean {
  const onHeaders = (_statusCode: number, headers: Headers) =>
    forwardedHeaders(headers, cacheStatusValue(config, { fwd, detail }))
  return next(opts, new PassHandler(handler, onHeaders))
}

/** RFC 9111 §5.2.1.7: only-if-cached with nothing usable → 504, the origin not contacted. */
export function gatewayTimeout(
  config: CacheConfig,
  handler: Dispatcher.DispatchHandler,
  opts: Dispatcher.DispatchOptions,
): boolean {
  dropUnsentBody(opts)
  const status = cacheStatusValue(config, { detail: 'only-if-cached' })
  serve(handler, new RelayController(), {
    statusCode: 504,
    statusMessage: 'Gateway Timeout',
    headers: forwardedHeaders({ 'content-length': '0' }, status),
  })
  return true
}
