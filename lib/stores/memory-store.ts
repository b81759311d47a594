/** MemoryStore: an in-process store, least recently used entries evicted by bytes and by count. */

import { deepFreeze } from './freeze.js'
import { LruMap } from './lru-map.js'
import { checkOptionKeys, integerOption, type StoreOptions } from './options.js'
import {
  type CacheStore,
  type EntryMeta,
  type EntryWriter,
  MAX_VARIANTS_PER_KEY,
  type StoredEntry,
} from './store.js'
import { metaOnly, WritersInProgress } from './writers.js'

const STORE_NAME = 'MemoryStore'
const MIB = 1024 * 1024

/** Options of `new MemoryStore()`; every size is in bytes. */
export interface MemoryStoreOptions {
  /**
   * Bytes kept, counting for each entry its body plus its metadata as JSON; least recently used
   * entries are evicted beyond. Default 64 MiB.
   */
  maxBytes?: number
  /** Largest body stored, in bytes (also capped at maxBytes); larger ones are not stored. Default 8 MiB. */
  maxEntryBytes?: number
  /** Entries kept at most; least recently used ones are evicted beyond. Default 10 000. */
  maxEntries?: number
}

/** The limits a MemoryStore runs with, options and defaults applied. */
export type MemoryStoreLimits = Required<MemoryStoreOptions>

export const MEMORY_STORE_DEFAULTS: Readonly<MemoryStoreLimits> = {
  maxBytes: 64 * MIB,
  maxEntryBytes: 8 * MIB,
  maxEntries: 10_000,
}

const OPTION_KEYS = ['maxBytes', 'maxEntryBytes', 'maxEntries'] as const

/**
 * A body is kept in pieces of at least this many bytes (the last one may be smaller), joined from the
 * chunks written. A stream that holds several small buffers when its reader asks joins them into a new
 * one (Node's Readable.read()): a 64 KiB body served as its two socket chunks cost a copy on every hit.
 */
export const PIECE_BYTES = 1024 * 1024

/**
 * A body up to this size is kept as one buffer, so a hit is one chunk; a larger one stays in pieces,
 * so a hit is served (and a caller that stops reading is paused) a piece at a time.
 */
export const ONE_BUFFER_MAX_BYTES = 8 * 1024 * 1024

/** One complete variant; `chunks` are its body's pieces. */
interface MemoryEntry {
  id: number
  key: string
  /** The metadata as JSON until the entry is first read; then `stored` holds it, parsed and frozen. */
  metaJson: string | undefined
  varyKey: string
  chunks: Buffer[]
  bodyBytes: number
  /** What counts against maxBytes: body plus metadata JSON. */
  sizeBytes: number
  /** What get() returns, built once: frozen, so no caller can change the store through it. */
  stored?: StoredEntry
}

/** What every writer of one store shares. */
interface WriterContext {
  entryLimitBytes: number
  insert(key: string, meta: MetaCopy, chunks: Buffer[], bodyBytes: number): void
  release(key: string, writer: MemoryEntryWriter): void
}

/**
 * An RFC 9111 cache store in this process's memory. Metadata is cloned in and out; a body written in one
 * buffer is kept as it is (do not change it afterwards); one written in several is joined into pieces of
 * PIECE_BYTES as it is written (so chunks are not held one by one), then, up to ONE_BUFFER_MAX_BYTES,
 * into one buffer at commit.
 * A delete(key) also drops the writes in progress under key.
 */
export class MemoryStore implements CacheStore {
  readonly limits: Readonly<MemoryStoreLimits>
  readonly #context: WriterContext
  /** Every entry by id, least recently used first. */
  readonly #byId = new LruMap<number, MemoryEntry>()
  /** The variants under each key, newest first. */
  readonly #byKey = new Map<string, MemoryEntry[]>()
  readonly #writers = new WritersInProgress<MemoryEntryWriter>()
  #totalBytes = 0
  #nextId = 1
  #open = true

  constructor(options?: MemoryStoreOptions) {
    this.limits = readLimits(checkOptionKeys(STORE_NAME, options, OPTION_KEYS))
    this.#context = {
      entryLimitBytes: Math.min(this.limits.maxEntryBytes, this.limits.maxBytes),
      insert: (key, meta, chunks, bodyBytes) => this.#insert(key, meta, chunks, bodyBytes),
      release: (key, writer) => this.#release(key, writer),
    }
  }

  get(key: string): StoredEntry[] {
    this.#assertOpen()
    const variants = this.#byKey.get(key) ?? []
    for (const entry of variants) this.#touch(entry)
    return variants.map(toStoredEntry)
  }

  put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined {
    this.#assertOpen()
    if (expectedSizeBytes !== undefined && expectedSizeBytes > this.#context.entryLimitBytes) return undefined
    const copy = metaCopy(meta)
    // the body fits, not with its metadata: the commit would store nothing
    if (expectedSizeBytes !== undefined && expectedSizeBytes + copy.metaBytes > this.limits.maxBytes)
      return undefined
    return this.#writers.add(key, new MemoryEntryWriter(this.#context, key, copy))
  }

  update(key: string, id: StoredEntry['id'], meta: EntryMeta): void {
    this.#assertOpen()
    const entry = typeof id === 'number' ? this.#byId.get(id) : undefined
    if (entry === undefined || entry.key !== key) return
    const copy = metaCopy(meta)
    // an entry too big alone keeps its metadata: others would be evicted for it in vain
    if (entry.bodyBytes + copy.metaBytes > this.limits.maxBytes) return
    entry.metaJson = copy.json
    entry.varyKey = copy.varyKey
    entry.stored = undefined
    const sizeBytes = entry.bodyBytes + copy.metaBytes
    this.#totalBytes += sizeBytes - entry.sizeBytes
    entry.sizeBytes = sizeBytes
    this.#removeOtherVariants(entry)
    this.#touch(entry)
    this.#evict(entry)
  }

  delete(key: string): void {
    this.#assertOpen()
    for (const entry of this.#byKey.get(key) ?? []) this.#remove(entry)
    this.#writers.abortKey(key)
  }

  close(): void {
    this.#writers.abortAll()
    this.#open = false
    this.#byId.clear()
    this.#byKey.clear()
    this.#totalBytes = 0
  }

  /** Bytes (as counted for maxBytes) and number of the stored entries. */
  stats(): { totalBytes: number; entryCount: number } {
    this.#assertOpen()
    return { totalBytes: this.#totalBytes, entryCount: this.#byId.size }
  }

  #insert(key: string, { json, varyKey, metaBytes }: MetaCopy, chunks: Buffer[], bodyBytes: number): void {
    this.#assertOpen()
    const sizeBytes = bodyBytes + metaBytes
    // too big alone (the body fits, not with its metadata): not stored, and nothing evicted for it
    if (sizeBytes > this.limits.maxBytes) return
    const id = this.#nextId++
    const entry: MemoryEntry = { id, key, metaJson: json, varyKey, chunks, bodyBytes, sizeBytes }
    this.#byKey.set(key, [entry, ...(this.#byKey.get(key) ?? [])])
    this.#byId.set(entry.id, entry)
    this.#totalBytes += sizeBytes
    this.#removeOtherVariants(entry)
    // newest first: what lies past the bound was committed before the rest
    for (const oldest of (this.#byKey.get(key) ?? []).slice(MAX_VARIANTS_PER_KEY)) this.#remove(oldest)
    this.#evict()
  }

  #removeOtherVariants(kept: MemoryEntry): void {
    for (const entry of this.#byKey.get(kept.key) ?? []) {
      if (entry !== kept && entry.varyKey === kept.varyKey) this.#remove(entry)
    }
  }

  /** Evicts from the least recently used end, never `kept` (an entry just updated, whose caller is about to serve it). */
  #evict(kept?: MemoryEntry): void {
    while (this.#totalBytes > this.limits.maxBytes || this.#byId.size > this.limits.maxEntries) {
      const oldest = this.#byId.get(this.#byId.oldestKey() as number)
      if (oldest === undefined || oldest === kept) return
      this.#remove(oldest)
    }
  }

  #touch(entry: MemoryEntry): void {
    this.#byId.touch(entry.id)
  }

  #remove(entry: MemoryEntry): void {
    this.#byId.delete(entry.id)
    this.#totalBytes -= entry.sizeBytes
    const variants = (this.#byKey.get(entry.key) ?? []).filter((variant) => variant !== entry)
    if (variants.length > 0) this.#byKey.set(entry.key, variants)
    else this.#byKey.delete(entry.key)
  }

  #release(key: string, writer: MemoryEntryWriter): void {
    this.#writers.release(key, writer)
  }

  #assertOpen(): void {
    if (!this.#open) throw new Error('undici-cache: MemoryStore is closed')
  }
}

function readLimits(options: StoreOptions): MemoryStoreLimits {
  const limit = (name: keyof MemoryStoreLimits, unit: string) =>
    integerOption(STORE_NAME, options, name, { defaultValue: MEMORY_STORE_DEFAULTS[name], min: 1, unit })
  return {
    maxBytes: limit('maxBytes', 'bytes'),
    maxEntryBytes: limit('maxEntryBytes', 'bytes'),
    maxEntries: limit('maxEntries', 'entries'),
  }
}

/** A private copy of some metadata: its JSON (whose bytes count against maxBytes) and its varyKey. */
interface MetaCopy {
  json: string
  varyKey: string
  metaBytes: number
}

/**
 * A private copy of `meta` (as JSON, as SqliteStore keeps it), without the fields of a StoredEntry
 * (callers may pass one back). It is parsed only when the entry is read: a miss stores without it.
 */
function metaCopy(meta: EntryMeta): MetaCopy {
  const json = JSON.stringify(metaOnly(meta))
  return { json, varyKey: meta.varyKey, metaBytes: Buffer.byteLength(json) }
}

/** The entry as get() returns it; hits share one frozen object and copy neither metadata nor body. */
function toStoredEntry(entry: MemoryEntry): StoredEntry {
  if (entry.stored) return entry.stored
  const { chunks } = entry
  const stored: StoredEntry = {
    ...deepFreeze(JSON.parse(entry.metaJson as string) as EntryMeta),
    id: entry.id,
    sizeBytes: entry.bodyBytes,
    readBody: () => chunks.values(),
  }
  if (chunks.length === 0) stored.body = Buffer.alloc(0)
  else if (chunks.length === 1) stored.body = chunks[0]
  entry.stored = Object.freeze(stored)
  entry.metaJson = undefined
  return entry.stored
}

/** Collects the chunks of one body; past maxEntryBytes it drops them and stores nothing. */
class MemoryEntryWriter implements EntryWriter {
  readonly #context: WriterContext
  readonly #key: string
  readonly #meta: MetaCopy
  #open = true
  /** Past the entry size limit: commit() stores nothing. */
  refused = false
  #pieces: Buffer[] = []
  /** Chunks written since the last piece was joined. */
  #pending: Buffer[] = []
  #pendingBytes = 0
  #bodyBytes = 0

  constructor(context: WriterContext, key: string, meta: MetaCopy) {
    this.#context = context
    this.#key = key
    this.#meta = meta
  }

  write(chunk: Buffer): void {
    if (!this.#open || chunk.length === 0) return
    this.#bodyBytes += chunk.length
    if (this.#bodyBytes > this.#context.entryLimitBytes) {
      this.refused = true
      this.abort()
      return
    }
    this.#pending.push(chunk)
    this.#pendingBytes += chunk.length
    if (this.#pendingBytes >= PIECE_BYTES) this.#joinPending()
  }

  commit(): void {
    if (!this.#open) return
    this.#joinPending()
    const oneBuffer = this.#pieces.length > 1 && this.#bodyBytes <= ONE_BUFFER_MAX_BYTES
    const pieces = oneBuffer ? [joined(this.#pieces, this.#bodyBytes)] : this.#pieces
    this.#close()
    this.#context.insert(this.#key, this.#meta, pieces, this.#bodyBytes)
  }

  abort(): void {
    if (this.#open) this.#close()
  }

  #joinPending(): void {
    const pending = this.#pending
    if (pending.length === 0) return
    this.#pieces.push(pending.length === 1 ? (pending[0] as Buffer) : joined(pending, this.#pendingBytes))
    this.#pending = []
    this.#pendingBytes = 0
  }

  #close(): void {
    this.#open = false
    this.#pieces = []
    this.#pending = []
    this.#pendingBytes = 0
    this.#context.release(this.#key, this)
  }
}

/** The chunks copied into one buffer of its own (not a slice of Node's shared pool, which it would keep alive). */
function joined(chunks: Buffer[], totalBytes: number): Buffer {
  const piece = Buffer.allocUnsafeSlow(totalBytes)
  let offset = 0
  for (const chunk of chunks) {
    piece.set(chunk, offset)
    offset += chunk.length
  }
  return piece
}
