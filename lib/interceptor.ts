import type { Dispatcher } from 'undici'
import { CacheDispatcher } from './cache-dispatcher.js'
import { type CacheInterceptorOptions, resolveConfig } from './options.js'
import { SqliteStore } from './stores/sqlite-store.js'

/**
 * An undici interceptor for `dispatcher.compose(...)` that caches per RFC 9111.
 * The returned dispatch function declares exactly two parameters, as undici 8's compose checks.
 */
export function cacheInterceptor(
  options: CacheInterceptorOptions = {},
): Dispatcher.DispatcherComposeInterceptor {
  const config = resolveConfig(options, () => new SqliteStore())
  return (dispatch) => {
    const cache = new CacheDispatcher(dispatch, config)
    return (opts, handler) => cache.dispatch(opts, handler)
  }
}
