import type { CacheStore } from './stores/store.js'

/** A getter of one `T` per store object, made on first use: what every interceptor on a store shares. */
export function perStore<T>(make: () => T): (store: CacheStore) => T {
  const byStore = new WeakMap<CacheStore, T>()
  return (store) => {
    let value = byStore.get(store)
    if (value === undefined) {
      value = make()
      byStore.set(store, value)
    }
    return value
  }
}
