import type { Dispatcher } from 'undici'
import { CacheDispatcher } from './cache-dispatcher.js'
import { newApiHandler } from './handlers/legacy-handler.js'
import { type CacheInterceptorOptions, resolveConfig } from './options.js'
import type { Serving } from './serving.js'
import { SqliteStore } from './stores/sqlite-store.js'
import type { CacheStore } from './stores/store.js'

/**
 * An undici interceptor for `dispatcher.compose(...)` that caches per RFC 9111.
 * The returned dispatch function declares exactly two parameters, as undici 8's compose checks.
 */
export function cacheInterceptor(
  options: CacheInterceptorOptions = {},
): Dispatcher.DispatcherComposeInterceptor {
  return interceptorWith(options, () => new SqliteStore()).interceptor
}

/**
 * cacheInterceptor, with the store to make when the options name none (called only if they are
 * valid), and the count of the requests under way through it.
 */
export function interceptorWith(
  options: CacheInterceptorOptions,
  defaultStore: () => CacheStore,
): { interceptor: Dispatcher.DispatcherComposeInterceptor; serving: Serving } {
  const config = resolveConfig(options, defaultStore)
  // undici 8's compose() passes the dispatcher's origin, and hands on old-API handlers unwrapped
  const interceptor = (
    dispatch: Dispatcher.Dispatch,
    dispatcherOrigin?: string | null,
  ): Dispatcher.Dispatch => {
    const cache = new CacheDispatcher(dispatch, config, dispatcherOrigin)
    return (opts, handler) => cache.dispatch(opts, newApiHandler(handler, opts))
  }
  return { interceptor, serving: config.serving }
}
