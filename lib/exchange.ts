import type { CacheConfig } from './options.js'
import { type CacheStatusParams, formatCacheStatus } from './policy/cache-status.js'
import type { RequestInfo } from './policy/types.js'

/** One request's journey through the cache: what every step needs to know about it. */
export interface Exchange {
  readonly config: CacheConfig
  /** Primary cache key (lib/key.ts). */
  readonly key: string
  readonly request: RequestInfo
  /** When the request was made (RFC 9111 §4.2.3 request_time), epoch ms. */
  readonly requestTimeMs: number
  /** False when this request may not store its response (request `no-store`). */
  readonly mayStore: boolean
}

/**
 * The Cache-Status field value (RFC 9211), or undefined when the header is turned off.
 * `ttl` counts whole seconds left, so a response one tenth of a second stale says `ttl=-1`.
 */
export function cacheStatusValue(config: CacheConfig, params: CacheStatusParams): string | undefined {
  if (config.cacheStatus === false) return undefined
  const ttlSeconds = params.ttlSeconds === undefined ? undefined : Math.floor(params.ttlSeconds)
  return formatCacheStatus(config.cacheStatus, { ...params, ttlSeconds })
}

function isPromise(value: unknown): value is Promise<unknown> {
  return typeof (value as Promise<unknown> | undefined)?.then === 'function'
}

/** Runs a store call whose failure must never reach the caller. */
export function quietly(onError: (error: unknown) => void, call: () => unknown): void {
  try {
    const result = call()
    if (isPromise(result)) result.catch(onError)
  } catch (error) {
    onError(error)
  }
}
