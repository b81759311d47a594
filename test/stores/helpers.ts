/** Small helpers shared by the store tests and the child-process writer. */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, existsSync, openSync, readdirSync, readlinkSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { BODY_DIR_SUFFIX } from '../../lib/stores/sqlite-body-files.js'
import { USE_BLOCK_IDS } from '../../lib/stores/sqlite-use-bits.js'
import type { CacheStore, EntryMeta, StoredEntry } from '../../lib/stores/store.js'

/** A plausible stored response; `overrides` replace fields. */
export function sampleMeta(overrides: Partial<EntryMeta> = {}): EntryMeta {
  return {
    statusCode: 200,
    statusMessage: 'OK',
    headers: { 'content-type': 'text/plain', 'cache-control': 'max-age=60' },
    requestTimeMs: 1_700_000_000_000,
    responseTimeMs: 1_700_000_000_050,
    varyValues: {},
    varyKey: '',
    deleteAtMs: 1_700_000_060_050,
    ...overrides,
  }
}

/** `sizeBytes` deterministic bytes; different seeds give different bodies. */
export function patternBody(sizeBytes: number, seed = 0): Buffer {
  const body = Buffer.allocUnsafe(sizeBytes)
  for (let i = 0; i < sizeBytes; i++) body[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff
  return body
}

/** Writes `body` in pieces of `writeBytes` (fresh buffers) and commits; false when put refused it. */
export async function storeBody(
  store: CacheStore,
  key: string,
  meta: EntryMeta,
  body: Buffer,
  writeBytes = 256,
): Promise<boolean> {
  const writer = store.put(key, meta)
  if (writer === undefined) return false
  for (let offset = 0; offset < body.length; offset += writeBytes) {
    await writer.write(Buffer.from(body.subarray(offset, offset + writeBytes)))
  }
  await writer.commit()
  return true
}

/** The chunks readBody yields, in order. */
export async function readChunks(entry: StoredEntry): Promise<Buffer[]> {
  const chunks: Buffer[] = []
  for await (const chunk of entry.readBody()) chunks.push(chunk)
  return chunks
}

/** An entry's body opened to be read piece by piece, whichever kind it is. */
export function openBody(entry: StoredEntry): Iterator<Buffer> | AsyncIterator<Buffer> {
  const body = entry.readBody()
  return Symbol.asyncIterator in body ? body[Symbol.asyncIterator]() : body[Symbol.iterator]()
}

/** The whole body of an entry. */
export async function readBody(entry: StoredEntry): Promise<Buffer> {
  return Buffer.concat(await readChunks(entry))
}

/** The fields of EntryMeta in an entry, to compare with what was stored. */
export function metaOf(entry: StoredEntry): EntryMeta {
  const {
    id: _id,
    sizeBytes: _sizeBytes,
    body: _body,
    readBody: _readBody,
    readRange: _range,
    ...meta
  } = entry
  return meta
}

/** The entry at `index`, failing the test when there is none. */
export function entryAt(entries: StoredEntry[], index = 0): StoredEntry {
  const entry = entries[index]
  if (entry === undefined) throw new Error(`no entry at ${index} (of ${entries.length})`)
  return entry
}

/** Runs child-writer.ts in a new process; resolves to the sha256 (hex) of the body it stored. */
export async function writeFromChild(path: string, key: string, sizes: ChildWrite): Promise<string> {
  const script = fileURLToPath(new URL('./child-writer.ts', import.meta.url))
  const args = [sizes.sizeBytes, sizes.seed, sizes.writeBytes, sizes.chunkBytes, sizes.bodyFiles ?? true].map(
    String,
  )
  const child = spawn(process.execPath, ['--import', 'tsx', script, path, key, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    output += text
  })
  const [exitCode] = await once(child, 'close') // after its stdout was read to the end
  if (exitCode !== 0) throw new Error(`child-writer.ts exited with ${exitCode}`)
  return output
}

/** What the child process writes: a patternBody(sizeBytes, seed) in writes of writeBytes. */
export interface ChildWrite {
  sizeBytes: number
  seed: number
  writeBytes: number
  chunkBytes: number
  /** SqliteStore's bodyFiles option; default true. */
  bodyFiles?: boolean
}

/** The directory of body files beside the SqliteStore database at `path`. */
export function bodyDirOf(path: string): string {
  return path + BODY_DIR_SUFFIX
}

/** The body file of entry `id` of the database at `path`. */
export function bodyFileOf(path: string, id: unknown): string {
  return join(bodyDirOf(path), String(id))
}

/** The names in the body directory, numbers in order first; [] when it does not exist. */
export function bodyFileNames(path: string): string[] {
  if (!existsSync(bodyDirOf(path))) return []
  return readdirSync(bodyDirOf(path)).sort((a, b) => Number(a) - Number(b) || a.localeCompare(b))
}

/** The size of entry `id`'s body file; -1 when there is none. */
export function bodyFileSize(path: string, id: unknown): number {
  const file = bodyFileOf(path, id)
  return existsSync(file) ? statSync(file).size : -1
}

/** What this process's open descriptors under the body directory of `path` point to (Linux). */
export function openBodyFds(path: string): string[] {
  const targets = readdirSync('/proc/self/fd').map((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`)
    } catch {
      return '' // the descriptor readdirSync used, closed by now
    }
  })
  return targets.filter((target) => target.startsWith(`${bodyDirOf(path)}/`)).sort()
}

/** For tests that read /proc/self/fd. */
export const linuxOnly = { skip: process.platform !== 'linux' && 'reads /proc/self/fd' }

/** Whether a SqliteStore file says the entry was used since its `last_used_ms` (its use bit). */
export function usedBit(raw: Database.Database, entryId: number): boolean {
  const select = raw.prepare<[number], Buffer>('SELECT bits FROM used_bits WHERE block = ?').pluck()
  const bits = select.get(Math.floor(entryId / USE_BLOCK_IDS))
  const bit = entryId % USE_BLOCK_IDS
  return bits !== undefined && ((bits[bit >> 3] as number) & (1 << (bit & 7))) !== 0
}

/**
 * Overwrites the root page of table or index `name` with 0xab bytes, once the WAL is folded into the
 * file: damage that only a read of it finds.
 */
export function damageRootPage(path: string, name: string): void {
  const raw = new Database(path)
  const rootPage = raw
    .prepare('SELECT rootpage FROM sqlite_schema WHERE name = ?')
    .pluck()
    .get(name) as number
  const pageBytes = raw.pragma('page_size', { simple: true }) as number
  raw.pragma('wal_checkpoint(TRUNCATE)')
  raw.close()
  const fd = openSync(path, 'r+')
  writeSync(fd, Buffer.alloc(pageBytes, 0xab), 0, pageBytes, (rootPage - 1) * pageBytes)
  closeSync(fd)
}

/** This process's open descriptors on `path`, its -wal and -shm, and a copy moved aside (Linux). */
export function fdsOnFile(path: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(path)
    } catch {
      return false
    }
  }).length
}

/** Makes SQLite refuse every insert of an entry under `key` (a write transaction that fails). */
export function refuseInserts(raw: Database.Database, key: string): void {
  raw.exec(`CREATE TRIGGER refuse BEFORE INSERT ON entries WHEN NEW.key = '${key}'
    BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`)
}
