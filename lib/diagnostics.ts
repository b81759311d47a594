import diagnosticsChannel from 'node:diagnostics_channel'

/** Published when a store operation fails and the request falls back to the origin. */
export const storeErrorChannel = diagnosticsChannel.channel('undici-cache:store-error')

/** Published when a background revalidation (stale-while-revalidate) fails; no caller sees it. */
export const revalidationErrorChannel = diagnosticsChannel.channel('undici-cache:revalidation-error')

export function reportRevalidationError(key: string, error: unknown): void {
  if (revalidationErrorChannel.hasSubscribers) revalidationErrorChannel.publish({ key, error })
}

/** A thrown value as an Error, to hand to a handler's onResponseError or a callback. */
export function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(String(thrown))
}

const warnedStores = new WeakSet<object>()

/** Reports a store failure: always on the channel, as a process warning once per store. */
export function reportStoreError(store: object, operation: string, error: unknown): void {
  if (storeErrorChannel.hasSubscribers) storeErrorChannel.publish({ store, operation, error })
  if (warnedStores.has(store)) return
  warnedStores.add(store)
  const message = error instanceof Error ? error.message : String(error)
  process.emitWarning(`undici-cache: store ${operation} failed, passing requests through: ${message}`, {
    code: 'UNDICI_CACHE_STORE_ERROR',
  })
}
