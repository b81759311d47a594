export { CacheAgent, type CacheAgentOptions } from './cache-agent.js'
export { revalidationErrorChannel, storeErrorChannel } from './diagnostics.js'
export { cacheInterceptor } from './interceptor.js'
export type { CacheInterceptorOptions, CacheRequestOptions } from './options.js'
export { MEMORY_STORE_DEFAULTS, MemoryStore, type MemoryStoreOptions } from './stores/memory-store.js'
export {
  REDIS_STORE_DEFAULTS,
  type RedisClient,
  RedisStore,
  type RedisStoreOptions,
} from './stores/redis-store.js'
export {
  defaultSqlitePath,
  type OnCorrupt,
  SQLITE_STORE_DEFAULTS,
  SqliteStore,
  type SqliteStoreOptions,
} from './stores/sqlite-store.js'
export type { CacheStore, EntryMeta, EntryWriter, StoredEntry } from './stores/store.js'
export { toUndiciStore, UNDICI_VALUE_HEADER, type UndiciCacheStore } from './stores/undici-store-adapter.js'
