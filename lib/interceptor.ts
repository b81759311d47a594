import type { Dispatcher } from 'undici'
import { CacheDispatcher } from './cache-dispatcher.js'
import { type CacheInterceptorOptions, resolveConfig } from './options.js'
import { SqliteStore } from './stores/sqlite-store.js'
import type { CacheStore } from './stores/store.js'

/**
 * An undici interceptor for `dispatcher.compose(...)` that caches per RFC 9111.
 * The returned dispatch function declares exactly two parameters, as undici 8's compose checks.
 */
export function cacheInterceptor(
  options: CacheInterceptorOptions = {},
): Dispatcher.DispatcherComposeInterceptor {
  return interceptorWith(options, () => new SqliteStore())
}

/** cacheInterceptor, with the store to make when the options name none (called only if they are valid). */
export function interceptorWith(
  options: CacheInterceptorOptions,
  defaultStore: () => CacheStore,
): Dispatcher.DispatcherComposeInterceptor {
  const config = resolveConfig(options, defaultStore)
  return (dispatch) => {
    const cache = new CacheDispatcher(dispatch, config)
    return (opts, handler) => cache.dispatch(opts, handler)
  }
}
