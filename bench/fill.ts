/**
 * Stores filled before a `fill` scenario measures hits: `count` entries of 1 KiB under
 * `${origin}/hit/1k?n=${i}`, written through the public store API as the interceptor writes them
 * (put → write → commitSoon where the store has it, else commit).
 *
 * An SQLite fill of 10⁶ entries takes minutes, so each filled file is kept in os.tmpdir(), named by
 * schema version, count and origin (the origin asks for a fixed port), and reused by later runs.
 * It is filled on /dev/shm when that has room (no disk syncs), then moved there.
 */
import { rmSync } from 'node:fs'
import { copyFile, open, readdir, rename, rm, statfs } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CacheStore, EntryMeta } from '../lib/stores/store.js'
import type { StoreLimits } from './clients.js'
import { SIZE_BYTES } from './scenarios.js'

/** Bump when the filled entries change, so that no older file is reused. */
const FILL_FORMAT = 3
const FILE_PREFIX = 'undici-cache-bench-fill-'
const SHM_DIR = '/dev/shm'
const BODY_BYTES = SIZE_BYTES['1k']
/** A year: filled files are reused across runs, so their entries must stay fresh that long. */
const FRESH_SECONDS = 365 * 24 * 3600
/** Generous bytes per entry on disk (body, metadata, index rows, page slack), to check free space. */
const DISK_BYTES_PER_ENTRY = 4096
const PROGRESS_EVERY_ENTRIES = 100_000

/** The key, and URL, of filled entry `index`. */
export function fillUrl(origin: string, index: number): string {
  return `${origin}/hit/1k?n=${index}`
}

/** What the body of filled entry `index` starts with: its index, so that a hit on another entry shows. */
export function fillPrefix(index: number): Buffer {
  return Buffer.from(`n=${index};`)
}

/** The 1 KiB body of filled entry `index`. */
function fillBody(index: number): Buffer {
  const body = Buffer.alloc(BODY_BYTES, 'f')
  fillPrefix(index).copy(body)
  return body
}

/** Limits that let a store keep `count` filled entries and the scenario's own with room to spare. */
export function fillLimits(count: number): StoreLimits {
  return { maxEntries: 2 * count, maxBytes: count * DISK_BYTES_PER_ENTRY + 64 * 1024 * 1024 }
}

/** A fresh 200 as the interceptor would store it: stored now, no Vary, never dropped early. */
function fillMeta(nowMs: number): EntryMeta {
  return {
    statusCode: 200,
    statusMessage: 'OK',
    headers: {
      'cache-control': `max-age=${FRESH_SECONDS}`,
      'content-length': String(BODY_BYTES),
      'content-type': 'application/octet-stream',
      date: new Date(nowMs).toUTCString(),
      etag: '"fill-1k"',
    },
    requestTimeMs: nowMs,
    responseTimeMs: nowMs,
    varyValues: {},
    varyKey: '',
    deleteAtMs: Number.MAX_SAFE_INTEGER,
    // stored as a shared cache stores: the default (shared) clients use nothing else
    sharedCache: true,
  }
}

/** Writes entries 0..count-1 into `store`, each with its own body; reports every 100 000th if `progress`. */
export async function fillStore(
  store: CacheStore,
  origin: string,
  count: number,
  progress = false,
): Promise<void> {
  const meta = fillMeta(Date.now())
  for (let index = 0; index < count; index++) {
    const writer = store.put(fillUrl(origin, index), meta, BODY_BYTES)
    if (!writer) throw new Error(`the store refused filled entry ${index}`)
    await writer.write(fillBody(index))
    await (writer.commitSoon ? writer.commitSoon() : writer.commit())
    if (progress && (index + 1) % PROGRESS_EVERY_ENTRIES === 0) {
      process.stderr.write(`  filled ${index + 1} of ${count} entries\n`)
    }
  }
}

async function cachedFileName(origin: string, count: number): Promise<string> {
  const { SCHEMA_VERSION } = await import('../lib/stores/sqlite-schema.js')
  const host = new URL(origin).host.replace(/[^0-9A-Za-z.]/g, '_')
  return `${FILE_PREFIX}s${SCHEMA_VERSION}-f${FILL_FORMAT}-n${count}-${host}.db`
}

async function freeBytes(dir: string): Promise<number> {
  try {
    const stats = await statfs(dir)
    return stats.bavail * stats.bsize
  } catch {
    return 0
  }
}

/** Where to build a file of `count` entries: /dev/shm when it has room for it twice, else `finalDir`. */
async function buildDir(count: number, finalDir: string): Promise<string> {
  return (await freeBytes(SHM_DIR)) > 2 * count * DISK_BYTES_PER_ENTRY ? SHM_DIR : finalDir
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Removes files a fill left behind: partial files of dead processes and stale fills of `count`. */
async function removeLeftovers(dir: string, keep: string, count: number): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[])
  for (const name of names) {
    if (!name.startsWith(FILE_PREFIX)) continue
    const pid = /\.partial-(\d+)/.exec(name)?.[1]
    const stale =
      pid === undefined ? !name.startsWith(keep) && name.includes(`-n${count}-`) : !isRunning(Number(pid))
    if (stale) await rm(join(dir, name), { force: true })
  }
}

function removeDatabase(path: string): void {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true })
}

/** Fills a new SQLite file at `path` with `count` entries and closes it (which folds the WAL in). */
async function fillSqliteFile(path: string, origin: string, count: number): Promise<void> {
  const { SqliteStore } = await import('../lib/stores/sqlite-store.js')
  const store = new SqliteStore({ ...fillLimits(count), path, sweepIntervalMs: 0 })
  try {
    await fillStore(store, origin, count, true)
  } finally {
    store.close()
  }
}

/** Moves a closed SQLite file to `target` atomically, across file systems too. */
async function moveInto(source: string, target: string): Promise<void> {
  const staging = `${target}.partial-${process.pid}-move`
  await copyFile(source, staging)
  await rename(staging, target)
  removeDatabase(source)
}

/** Bytes read at a time by readThrough. */
const READ_THROUGH_BYTES = 1024 * 1024

/**
 * Reads a filled file (and its WAL) once, so that its pages are in the OS page cache before hits are
 * measured, as on a machine serving from it: hits then measure the store, not the disk. A VM may page
 * out file pages left unused for a while (DAMON's pageout on the VMs the README's runs come from:
 * a minute), and a 10⁶ file read from a virtual disk ran at 1 500–1 800 hits a second.
 */
export async function readThrough(path: string): Promise<void> {
  const buffer = Buffer.allocUnsafe(READ_THROUGH_BYTES)
  for (const file of [path, `${path}-wal`]) {
    const handle = await open(file, 'r').catch(() => undefined)
    if (!handle) continue
    try {
      while ((await handle.read(buffer, 0, buffer.length, null)).bytesRead > 0) {}
    } finally {
      await handle.close()
    }
  }
}

/** The path of an SQLite file holding `count` filled entries for `origin`, filling it if not cached. */
export async function filledSqlitePath(origin: string, count: number): Promise<string> {
  const finalDir = tmpdir()
  const name = await cachedFileName(origin, count)
  const target = join(finalDir, name)
  if ((await readdir(finalDir)).includes(name)) return target
  await removeLeftovers(finalDir, name, count)
  await removeLeftovers(SHM_DIR, name, count)
  if ((await freeBytes(finalDir)) < count * DISK_BYTES_PER_ENTRY) throw new Error(`${finalDir} is too full`)
  const partial = join(await buildDir(count, finalDir), `${name}.partial-${process.pid}`)
  const startMs = Date.now()
  process.stderr.write(`  filling ${name} (${count} entries, once; reused by later runs)\n`)
  const removePartial = () => removeDatabase(partial)
  process.once('exit', removePartial)
  await fillSqliteFile(partial, origin, count)
  await moveInto(partial, target)
  process.off('exit', removePartial)
  process.stderr.write(`  filled ${count} entries in ${((Date.now() - startMs) / 1000).toFixed(1)} s\n`)
  return target
}
