import type { Dispatcher } from 'undici'
import { cacheStatusValue, type Exchange } from '../exchange.js'
import { dropUnsentBody } from '../own-request.js'
import type { CacheStatusParams } from '../policy/cache-status.js'
import { evaluateClientConditional, notModifiedHeaders } from '../policy/conditional.js'
import { contentRangeValue, evaluateRange } from '../policy/range.js'
import type { Headers, StoredResponse } from '../policy/types.js'
import type { StoredEntry } from '../stores/store.js'
import { restOnFailure } from './catch-up.js'
import type { RelayController } from './relay-controller.js'
import { servedHeaders } from './response-headers.js'
import { restFetcher } from './rest-from-origin.js'
import { entryBody, rangeBody, type ServedResponse, serve } from './serve.js'

/** What the cache answers from a stored response, given the request (RFC 9111 §4, §4.3.2; RFC 9110 §14). */
function cachedResponse(
  exchange: Exchange,
  entry: StoredEntry,
  meta: StoredResponse,
  ageSeconds: number,
  status: string | undefined,
): ServedResponse {
  const { headers: requestHeaders, method } = exchange.request
  // RFC 9110 §8.6: no Content-Length on a 204
  const lengthBytes = meta.statusCode === 204 ? undefined : entry.sizeBytes
  const headers = servedHeaders(meta.headers, meta.responseTimeMs, ageSeconds, status, lengthBytes)
  if (evaluateClientConditional(requestHeaders, meta) === 'not-modified') {
    return {
      statusCode: 304,
      statusMessage: 'Not Modified',
      headers: servedHeaders(
        notModifiedHeaders(meta.headers),
        meta.responseTimeMs,
        ageSeconds,
        status,
        undefined,
      ),
    }
  }
  const { statusCode, statusMessage } = meta
  if (method === 'HEAD') return { statusCode, statusMessage, headers }
  if (statusCode !== 200) return { statusCode, statusMessage, headers, body: entryBody(entry) }
  // the served headers: a Date the cache gave a response without one is the Date If-Range is held to
  const range = evaluateRange(requestHeaders, entry.sizeBytes, headers)
  if (range.kind === 'partial') {
    headers['content-range'] = contentRangeValue(range, entry.sizeBytes)
    headers['content-length'] = String(range.end - range.start + 1)
    return {
      statusCode: 206,
      statusMessage: 'Partial Content',
      headers,
      body: rangeBody(entry, range.start, range.end),
    }
  }
  if (range.kind === 'unsatisfiable') {
    const refused = servedHeaders(
      notModifiedHeaders(meta.headers),
      meta.responseTimeMs,
      ageSeconds,
      status,
      0,
    )
    refused['content-range'] = contentRangeValue(range, entry.sizeBytes)
    return { statusCode: 416, statusMessage: 'Range Not Satisfiable', headers: refused }
  }
  return { statusCode, statusMessage, headers, body: entryBody(entry) }
}

/**
 * Answers the caller from a stored entry, with `meta` as the (possibly freshened) metadata. A whole
 * body the store fails to read midway (evicted, deleted, the store gone) is finished from the origin
 * through `next` when it has a strong ETag (never for only-if-cached); otherwise the caller gets the error.
 */
export function respondFromCache(
  exchange: Exchange,
  downstream: Dispatcher.DispatchHandler,
  relay: RelayController,
  entry: StoredEntry,
  meta: StoredResponse,
  ageSeconds: number,
  params: CacheStatusParams,
  next?: Dispatcher.Dispatch,
): void {
  const status = cacheStatusValue(exchange.config, params)
  const response = cachedResponse(exchange, entry, meta, ageSeconds, status)
  const fromOrigin =
    next && response.statusCode === 200 && response.body && !entry.body && !exchange.onlyIfCached
      ? restFetcher(next, exchange.opts, exchange.request.headers, withLength(meta.headers, entry.sizeBytes))
      : undefined
  serve(fromOrigin ? restOnFailure(downstream, relay, 0, fromOrigin) : downstream, relay, response)
  dropUnsentBody(exchange.opts)
}

/** The stored headers with the length of the stored body, which the rest fetched again must match. */
function withLength(headers: Headers, sizeBytes: number): Headers {
  return { ...headers, 'content-length': String(sizeBytes) }
}
