/** The options of `new RedisStore()`, their defaults and their validation. */
import {
  checkOptionKeys,
  integerOption,
  MAX_CHUNK_BYTES,
  type StoreOptions,
  stringOption,
} from './options.js'

export const STORE_NAME = 'RedisStore'
const KIB = 1024
const MIB = 1024 * KIB
const DAY_SECONDS = 24 * 60 * 60

/**
 * What RedisStore needs of a Redis client: an `ioredis` (or `iovalkey`) instance fits.
 * `status` is ioredis's connection state ('ready' when commands can be sent).
 */
export interface RedisClient {
  readonly status: string
  callBuffer(command: string, args: (string | Buffer | number)[]): Promise<unknown>
  quit(): Promise<unknown>
}

/** Options of `new RedisStore()`: exactly one of `client` and `url`. Sizes in bytes, times in seconds. */
export interface RedisStoreOptions {
  /** A connected ioredis (or iovalkey) client; the caller owns it and closes it, the store never does. */
  client?: RedisClient
  /**
   * A `redis://` or `rediss://` URL; the store creates an ioredis client (ioredis must be installed),
   * configured to fail fast while disconnected, and closes it on `close()`.
   */
  url?: string
  /** Prefix of every Redis key the store writes. Default 'undici-cache:'. */
  keyPrefix?: string
  /** Largest body stored, in bytes; larger ones are passed through, not stored. Default 8 MiB. */
  maxEntryBytes?: number
  /**
   * Bytes sent to Redis in one command while a body is written, and read in one GETRANGE when it
   * is served; bodies up to this size are stored next to the metadata. Default 64 KiB, min 1 KiB.
   */
  chunkBytes?: number
  /**
   * Longest expiry set on an entry, in seconds, e.g. for entries with validators (kept until
   * evicted) or with no known end of use. Default 7 days.
   */
  maxTtlSeconds?: number
  /** Shortest expiry set on an entry, in seconds, even when its useful life is already over. Default 60. */
  minTtlSeconds?: number
  /**
   * For a client created from `url`: seconds a connection attempt or a command may take before it
   * fails (the request then passes through to the origin). Default 2; fractions allowed.
   */
  timeoutSeconds?: number
}

/** The limits a RedisStore runs with, options and defaults applied. */
export interface RedisStoreLimits {
  keyPrefix: string
  maxEntryBytes: number
  chunkBytes: number
  maxTtlSeconds: number
  minTtlSeconds: number
  timeoutSeconds: number
}

export const REDIS_STORE_DEFAULTS: Readonly<RedisStoreLimits> = {
  keyPrefix: 'undici-cache:',
  maxEntryBytes: 8 * MIB,
  chunkBytes: 64 * KIB,
  maxTtlSeconds: 7 * DAY_SECONDS,
  minTtlSeconds: 60,
  timeoutSeconds: 2,
}

const OPTION_KEYS = [
  'client',
  'url',
  'keyPrefix',
  'maxEntryBytes',
  'chunkBytes',
  'maxTtlSeconds',
  'minTtlSeconds',
  'timeoutSeconds',
] as const

/** Where the store's connection comes from. */
export type RedisSource = { client: RedisClient; url?: undefined } | { url: string; client?: undefined }

/** Checks `options` and applies the defaults; TypeError for a wrong type, RangeError for a bad value. */
export function readRedisOptions(options: unknown): { source: RedisSource; limits: RedisStoreLimits } {
  const checked = checkOptionKeys(STORE_NAME, options, OPTION_KEYS)
  return { source: readSource(checked), limits: readLimits(checked) }
}

function readSource(options: StoreOptions): RedisSource {
  const { client, url } = options
  if ((client === undefined) === (url === undefined)) {
    throw new TypeError(`${STORE_NAME} needs exactly one of the options client and url`)
  }
  if (client !== undefined) return { client: checkClient(client) }
  return { url: checkUrl(stringOption(STORE_NAME, options, 'url', '')) }
}

function checkClient(client: unknown): RedisClient {
  const candidate = client as Partial<RedisClient> | null
  if (typeof candidate !== 'object' || candidate === null || typeof candidate.callBuffer !== 'function') {
    throw new TypeError(`${STORE_NAME} option client must be an ioredis client`)
  }
  return candidate as RedisClient
}

function checkUrl(url: string): string {
  let protocol: string
  try {
    protocol = new URL(url).protocol
  } catch {
    protocol = ''
  }
  if (protocol !== 'redis:' && protocol !== 'rediss:') {
    throw new RangeError(
      `${STORE_NAME} option url must be a redis:// or rediss:// URL, got ${JSON.stringify(url)}`,
    )
  }
  return url
}

/**
 * The longest expiry, in seconds (about 68 years): Redis scripts pass an expiry in ms as a Lua number,
 * which past 10^15 ms becomes `1e+15`, and PEXPIRE refuses it.
 */
export const MAX_TTL_SECONDS = 2 ** 31 - 1

function readLimits(options: StoreOptions): RedisStoreLimits {
  const defaults = REDIS_STORE_DEFAULTS
  const integer = (name: keyof RedisStoreLimits, min: number, unit: string, max?: number) =>
    integerOption(STORE_NAME, options, name, { defaultValue: defaults[name] as number, min, max, unit })
  const limits: RedisStoreLimits = {
    keyPrefix: stringOption(STORE_NAME, options, 'keyPrefix', defaults.keyPrefix),
    maxEntryBytes: integer('maxEntryBytes', 1, 'bytes'),
    chunkBytes: integer('chunkBytes', KIB, 'bytes', MAX_CHUNK_BYTES),
    maxTtlSeconds: integer('maxTtlSeconds', 1, 'seconds', MAX_TTL_SECONDS),
    minTtlSeconds: integer('minTtlSeconds', 1, 'seconds', MAX_TTL_SECONDS),
    timeoutSeconds: positiveNumber(options, 'timeoutSeconds', defaults.timeoutSeconds),
  }
  if (limits.minTtlSeconds > limits.maxTtlSeconds) {
    throw new RangeError(`${STORE_NAME} option minTtlSeconds must not exceed maxTtlSeconds`)
  }
  return limits
}

/** The longest delay a Node timer takes (a longer one fires after 1 ms), in seconds. */
const MAX_TIMER_SECONDS = (2 ** 31 - 1) / 1000

/** A number > 0 (fractions allowed) of seconds a timer can wait. */
function positiveNumber(options: StoreOptions, name: string, defaultValue: number): number {
  const value = options[name]
  if (value === undefined) return defaultValue
  const message = `${STORE_NAME} option ${name} must be a positive number of seconds up to ${MAX_TIMER_SECONDS}, got ${typeof value === 'number' ? value : `a ${typeof value}`}`
  if (typeof value !== 'number') throw new TypeError(message)
  if (!(value > 0 && value <= MAX_TIMER_SECONDS)) throw new RangeError(message)
  return value
}
