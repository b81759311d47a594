import { type CommitOrder, commitOrderOf } from './commit-order.js'
import { type Invalidations, invalidationsOf } from './invalidations.js'
import { TOKEN } from './policy/syntax.js'
import { Serving } from './serving.js'
import type { CacheStore } from './stores/store.js'

/** Per-request overrides, given as `cache: { ... }` on the dispatch options. */
export interface CacheRequestOptions {
  /** Forced freshness lifetime in seconds: a stored response younger than this is served. */
  ttl?: number
  /** A custom primary cache key, replacing the URL. */
  key?: string
  /** Skip the cache entirely: no lookup, nothing stored. */
  bypass?: boolean
  /** Never contact the origin: serve from the cache or answer 504 (RFC 9111 §5.2.1.7). */
  onlyIfCached?: boolean
}

export interface CacheInterceptorOptions {
  /** Where responses are kept (default: a SqliteStore at its default path). */
  store?: CacheStore
  /** RFC 9111 shared-cache rules (default true). */
  shared?: boolean
  /** Request methods answered from the cache (default ['GET', 'HEAD']); only GET responses are stored. */
  methods?: string[]
  /** The cache's name in `Cache-Status` (RFC 9211); `false` adds no header (default 'undici-cache'). */
  cacheStatus?: string | false
  /**
   * RFC 9213 targeted caching: `true` obeys `CDN-Cache-Control`, a string names another targeted
   * field; when present it replaces Cache-Control and Expires for this cache (shared mode only).
   */
  cdnCacheControl?: boolean | string
}

/** Options after validation, with defaults applied. */
export interface CacheConfig {
  store: CacheStore
  /** The requests under way through the cache. */
  serving: Serving
  /** What was invalidated through any interceptor on this store, and when (RFC 9111 §4.4). */
  invalidations: Invalidations
  /** When the request of each variant's last committed response was sent (RFC 9111 §4: the most recent). */
  commitOrder: CommitOrder
  shared: boolean
  methods: ReadonlySet<string>
  cacheStatus: string | false
  /** Lower-case targeted cache-control field names, in priority order (RFC 9213). */
  targetFields: readonly string[]
}

const CACHEABLE_METHODS = new Set(['GET', 'HEAD'])
const STORE_METHODS = ['get', 'put', 'update', 'delete', 'close'] as const

function isCacheStore(value: unknown): value is CacheStore {
  if (typeof value !== 'object' || value === null) return false
  const candidate = value as Record<string, unknown>
  return STORE_METHODS.every((name) => typeof candidate[name] === 'function')
}

function validateMethods(methods: unknown): ReadonlySet<string> {
  if (!Array.isArray(methods))
    throw new TypeError('cacheInterceptor option methods must be an array of strings')
  for (const method of methods) {
    if (typeof method !== 'string' || !CACHEABLE_METHODS.has(method)) {
      throw new RangeError(
        `cacheInterceptor option methods may hold only 'GET' and 'HEAD', got ${String(method)}`,
      )
    }
  }
  return new Set(methods)
}

function validateTargetFields(value: unknown, shared: boolean): readonly string[] {
  if (value === undefined || value === false) return []
  if (value !== true && (typeof value !== 'string' || !TOKEN.test(value))) {
    throw new TypeError('cacheInterceptor option cdnCacheControl must be a boolean or a header field name')
  }
  if (!shared) throw new RangeError('cacheInterceptor option cdnCacheControl applies only with shared: true')
  return [value === true ? 'cdn-cache-control' : value.toLowerCase()]
}

function validateCacheStatus(value: unknown): string | false {
  if (value === false) return false
  if (typeof value !== 'string' || !/^[\x21-\x7e]+$/.test(value)) {
    throw new TypeError(
      'cacheInterceptor option cacheStatus must be false or a non-empty string without spaces',
    )
  }
  return value
}

/** The options of cacheInterceptor (and of CacheAgent, with `agent`). */
export const INTERCEPTOR_OPTIONS = ['store', 'shared', 'methods', 'cacheStatus', 'cdnCacheControl']

/** The names of the per-request `cache` option. */
const REQUEST_OPTIONS = ['ttl', 'key', 'bypass', 'onlyIfCached']

/** A misspelt option would silently fall back to its default (a store on disk for `store`). */
export function assertKnownOptions(owner: string, options: object, known: readonly string[]): void {
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) throw new TypeError(`${owner} has no option ${name}`)
  }
}

/** An options object as given: not null, not an array. */
export function isOptionsObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Validates interceptor options; `defaultStore` is called only when they are valid and name no store. */
export function resolveConfig(options: CacheInterceptorOptions, defaultStore: () => CacheStore): CacheConfig {
  if (!isOptionsObject(options)) {
    throw new TypeError('cacheInterceptor options must be an object')
  }
  assertKnownOptions('cacheInterceptor', options, INTERCEPTOR_OPTIONS)
  if (options.store !== undefined && !isCacheStore(options.store)) {
    throw new TypeError(`cacheInterceptor option store must implement ${STORE_METHODS.join(', ')}`)
  }
  if (options.shared !== undefined && typeof options.shared !== 'boolean') {
    throw new TypeError('cacheInterceptor option shared must be a boolean')
  }
  const shared = options.shared ?? true
  const targetFields = validateTargetFields(options.cdnCacheControl, shared)
  const methods = validateMethods(options.methods ?? ['GET', 'HEAD'])
  const cacheStatus = validateCacheStatus(options.cacheStatus ?? 'undici-cache')
  const store = options.store ?? defaultStore()
  return {
    shared,
    targetFields,
    methods,
    cacheStatus,
    store,
    serving: new Serving(),
    invalidations: invalidationsOf(store),
    commitOrder: commitOrderOf(store),
  }
}

/** Validates the per-request `cache` option; undefined when absent. */
export function resolveRequestOptions(value: unknown): CacheRequestOptions | undefined {
  if (value === undefined || value === null) return undefined
  if (!isOptionsObject(value)) throw new TypeError('request option cache must be an object')
  assertKnownOptions('request option cache', value, REQUEST_OPTIONS)
  const options = value as CacheRequestOptions
  if (options.ttl !== undefined && !(typeof options.ttl === 'number' && options.ttl >= 0)) {
    throw new RangeError('request option cache.ttl must be a non-negative number of seconds')
  }
  if (options.key !== undefined && (typeof options.key !== 'string' || options.key === '')) {
    throw new TypeError('request option cache.key must be a non-empty string')
  }
  for (const flag of ['bypass', 'onlyIfCached'] as const) {
    if (options[flag] !== undefined && typeof options[flag] !== 'boolean') {
      throw new TypeError(`request option cache.${flag} must be a boolean`)
    }
  }
  if (options.bypass && options.onlyIfCached) {
    throw new TypeError('request option cache.bypass and cache.onlyIfCached cannot both be true')
  }
  return options
}
