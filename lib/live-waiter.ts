import type { Dispatcher } from 'undici'
import { cacheStatusValue, type Exchange } from './exchange.js'
import type { LiveWaiter } from './handlers/fan-out.js'
import { forwardedHeaders } from './handlers/response-headers.js'
import { dropUnsentBody } from './own-request.js'
import type { ForwardReason } from './policy/cache-status.js'
import { isClientConditional } from './policy/revalidation.js'
import { varyFieldNames, varyKey, varyValues } from './policy/vary.js'
import type { EntryMeta } from './stores/store.js'

/**
 * A plain GET waiter can be fed the leader's response as it arrives (RFC 9211 `collapsed`); one with a
 * Range, its own conditionals or a forced lifetime re-enters the cache instead, once the flight settles.
 */
export function liveWaiter(
  exchange: Exchange,
  handler: Dispatcher.DispatchHandler,
  fwd: ForwardReason,
  reuses: (stored: EntryMeta) => boolean,
): LiveWaiter | undefined {
  const { headers, method } = exchange.request
  if (method !== 'GET' || headers.range !== undefined || isClientConditional(headers)) return undefined
  if (exchange.requestOptions?.ttl !== undefined) return undefined
  const { bodyTimeout } = exchange.opts
  return {
    handler,
    // undici's 0 turns it off; without one, the first caller's request has the dispatcher's default
    bodyTimeoutMs: typeof bodyTimeout === 'number' && bodyTimeout > 0 ? bodyTimeout : undefined,
    reuses,
    varyKeyFor: (responseHeaders) => {
      const names = varyFieldNames(responseHeaders)
      return names === '*' ? '*' : varyKey(varyValues(names, headers))
    },
    headers: (responseHeaders) => {
      // fed from now on: its own request is never sent
      dropUnsentBody(exchange.opts)
      return forwardedHeaders(responseHeaders, cacheStatusValue(exchange.config, { fwd, collapsed: true }))
    },
  }
}
