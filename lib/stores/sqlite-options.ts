/** The options of `new SqliteStore()`, their defaults and their validation. */
import { join } from 'node:path'
import {
  booleanOption,
  checkOptionKeys,
  choiceOption,
  integerOption,
  MAX_CHUNK_BYTES,
  type StoreOptions,
  stringOption,
} from './options.js'

export const STORE_NAME = 'SqliteStore'
const KIB = 1024
const MIB = 1024 * KIB
const GIB = 1024 * MIB
/** The longest delay setInterval takes (a longer one fires after 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1

/** What to do with a file at the path that is damaged or not an SQLite database. */
export type OnCorrupt = 'fail' | 'recreate'

/** Options of `new SqliteStore()`; every size is in bytes. */
export interface SqliteStoreOptions {
  /** Database file, or ':memory:'; parent directories are created. Default: `defaultSqlitePath()`. */
  path?: string
  /**
   * Bytes kept, counting for each complete entry its body plus its metadata JSON; least recently used
   * entries are evicted beyond. Default 1 GiB.
   */
  maxBytes?: number
  /** Largest body stored, in bytes (also capped at maxBytes); larger ones are not stored. Default 256 MiB. */
  maxEntryBytes?: number
  /** Complete entries kept at most; least recently used ones are evicted beyond. Default 100 000. */
  maxEntries?: number
  /** Bytes gathered before one chunk row is written; smaller bodies are stored inline. Default 256 KiB, min 1 KiB. */
  chunkBytes?: number
  /**
   * Milliseconds between two background sweeps of expired entries and killed writers' rows;
   * 0 runs none (call `sweep()` yourself). Default 60 000.
   */
  sweepIntervalMs?: number
  /**
   * A damaged or non-SQLite file at `path`: 'fail' leaves it alone and passes every request through;
   * 'recreate' moves it (with its -wal and -shm) to `<path>.corrupt-<epoch ms>` and starts an empty
   * cache. Default 'fail'.
   */
  onCorrupt?: OnCorrupt
  /**
   * Bytes of recently read entries (bodies included, each key's at most a quarter of it) this process
   * keeps in memory in front of the file; emptied whenever another process commits. 0 turns it off.
   * Default 32 MiB.
   */
  hotBytes?: number
  /**
   * Whether bodies that reach chunkBytes are written as plain files in `<path>-bodies/` (read back with
   * a few large reads) rather than as chunk rows inside the database. Always false for ':memory:'.
   * Default true.
   */
  bodyFiles?: boolean
}

/** The size limits a SqliteStore runs with, options and defaults applied. */
export type SqliteStoreLimits = Required<
  Pick<SqliteStoreOptions, 'maxBytes' | 'maxEntryBytes' | 'maxEntries' | 'chunkBytes'>
>

/** Every option but `path`, defaults applied. */
export type SqliteStoreSettings = Required<Omit<SqliteStoreOptions, 'path'>>

export const SQLITE_STORE_DEFAULTS: Readonly<SqliteStoreSettings> = {
  maxBytes: GIB,
  maxEntryBytes: 256 * MIB,
  maxEntries: 100_000,
  chunkBytes: 256 * KIB,
  sweepIntervalMs: 60_000,
  onCorrupt: 'fail',
  hotBytes: 32 * MIB,
  bodyFiles: true,
}

const OPTION_KEYS = [
  'path',
  'maxBytes',
  'maxEntryBytes',
  'maxEntries',
  'chunkBytes',
  'sweepIntervalMs',
  'onCorrupt',
  'hotBytes',
  'bodyFiles',
] as const

/** `UNDICI_CACHE_PATH` when set, else `.cache/undici-cache/http-cache.db` under the current directory. */
export function defaultSqlitePath(): string {
  return process.env.UNDICI_CACHE_PATH || join(process.cwd(), '.cache', 'undici-cache', 'http-cache.db')
}

/** Checks `options` (TypeError / RangeError on bad ones) and applies the defaults. */
export function readSqliteOptions(options: unknown): SqliteStoreSettings & { path: string } {
  const checked = checkOptionKeys(STORE_NAME, options, OPTION_KEYS)
  const defaults = SQLITE_STORE_DEFAULTS
  const bytes = (name: string, defaultValue: number, min = 1, max?: number) =>
    integerOption(STORE_NAME, checked, name, { defaultValue, min, max, unit: 'bytes' })
  return {
    path: pathOption(checked),
    maxBytes: bytes('maxBytes', defaults.maxBytes),
    maxEntryBytes: bytes('maxEntryBytes', defaults.maxEntryBytes),
    maxEntries: count(checked, 'maxEntries', defaults.maxEntries),
    chunkBytes: bytes('chunkBytes', defaults.chunkBytes, KIB, MAX_CHUNK_BYTES),
    sweepIntervalMs: integerOption(STORE_NAME, checked, 'sweepIntervalMs', {
      defaultValue: defaults.sweepIntervalMs,
      min: 0,
      max: MAX_TIMER_MS,
      unit: 'ms',
    }),
    onCorrupt: choiceOption(STORE_NAME, checked, 'onCorrupt', ['fail', 'recreate'], defaults.onCorrupt),
    hotBytes: bytes('hotBytes', defaults.hotBytes, 0),
    bodyFiles: booleanOption(STORE_NAME, checked, 'bodyFiles', defaults.bodyFiles),
  }
}

/** A NUL ends the file name for SQLite (another file would be opened) and Node's fs refuses it. */
function pathOption(options: StoreOptions): string {
  const path = stringOption(STORE_NAME, options, 'path', defaultSqlitePath())
  if (path.includes('\0')) throw new TypeError(`${STORE_NAME} option path must not contain a NUL character`)
  return path
}

function count(options: StoreOptions, name: string, defaultValue: number): number {
  return integerOption(STORE_NAME, options, name, { defaultValue, min: 1, unit: 'entries' })
}
