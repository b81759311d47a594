/** RedisStore: a cache store in Redis, shared by every process and machine that uses the same Redis. */
import { createHash, randomBytes, randomInt } from 'node:crypto'
import { asError, reportStoreError } from '../diagnostics.js'
import { RedisConnection, settledWithin } from './redis-connection.js'
import { RedisLookups } from './redis-lookups.js'
import {
  type RedisClient,
  type RedisStoreLimits,
  type RedisStoreOptions,
  readRedisOptions,
} from './redis-options.js'
import { DELETE_SCRIPT, GET_SCRIPT, UPDATE_SCRIPT } from './redis-scripts.js'
import { RedisEntryWriter, type WriterContext } from './redis-writer.js'
import type { CacheStore, EntryMeta, EntryWriter, StoredEntry } from './store.js'
import { metaOnly, WritersInProgress } from './writers.js'

export { REDIS_STORE_DEFAULTS, type RedisClient, type RedisStoreOptions } from './redis-options.js'

/** One variant as the get script returns it, before its body is read. */
interface FoundVariant {
  seq: number
  entry: StoredEntry
}

/**
 * An RFC 9111 cache store in Redis (via ioredis). Each entry gets an expiry from its useful
 * lifetime (between minTtlSeconds and maxTtlSeconds); beyond that, Redis's own memory limit and
 * eviction bound the cache (set `maxmemory` and `maxmemory-policy allkeys-lru`). An entry is
 * visible only once complete; an evicted body is never served short. While Redis is unreachable
 * every method fails at once, so requests pass through to the origin; caching resumes when it is back.
 * A delete(key) also drops the writes in progress under key in this instance.
 */
export class RedisStore implements CacheStore {
  readonly limits: Readonly<RedisStoreLimits>
  readonly #connection: RedisConnection
  readonly #context: WriterContext
  readonly #writers = new WritersInProgress<RedisEntryWriter>()
  #open = true
  /** Commits and deletes of bodies sent and not yet answered. */
  readonly #inFlight = new Set<Promise<unknown>>()
  readonly #lookups = new RedisLookups()
  /** Deletes sent and not yet answered, by key: a lookup of the key waits for one (see get). */
  readonly #deleting = new Map<string, Promise<void>>()

  constructor(options: RedisStoreOptions) {
    const { source, limits } = readRedisOptions(options)
    this.limits = limits
    const onError = (error: Error) => reportStoreError(this, 'connect', error)
    this.#connection =
      source.client !== undefined
        ? RedisConnection.of(source.client)
        : RedisConnection.open(source.url, limits.timeoutSeconds * 1000, onError)
    this.#context = {
      connection: this.#connection,
      maxEntryBytes: limits.maxEntryBytes,
      chunkBytes: limits.chunkBytes,
      ttlMs: (deleteAtMs) => this.#ttlMs(deleteAtMs),
      release: (key, writer) => this.#release(key, writer),
      track: (command) => {
        this.#inFlight.add(command)
        const done = () => this.#inFlight.delete(command)
        command.then(done, done)
      },
    }
  }

  /** The Redis client in use: the one passed as `client`, or the one created from `url`. */
  get client(): RedisClient {
    return this.#connection.client
  }

  async get(key: string): Promise<StoredEntry[]> {
    this.#assertOpen()
    // RFC 9111 §4.4: a lookup sent after a delete sees it, even when Redis had forgotten the delete's
    // script and it went out again behind the lookup
    const deleting = this.#deleting.get(key)
    if (deleting !== undefined) await this.#afterDelete(deleting)
    const indexKey = this.#indexKey(key)
    const lookedUpMs = Date.now()
    const reply = (await this.#connection.run(GET_SCRIPT, [indexKey], [])) as (Buffer | null)[]
    this.#lookups.looked(key, reply[0] ? String(reply[0]) : '', lookedUpMs)
    const found: FoundVariant[] = []
    for (let i = 1; i + 2 < reply.length; i += 3) {
      found.push(this.#toVariant(indexKey, String(reply[i]), reply[i + 1] as Buffer, reply[i + 2] ?? null))
    }
    return found.sort((a, b) => b.seq - a.seq).map((variant) => variant.entry)
  }

  put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined {
    this.#assertOpen()
    this.#connection.assertReachable()
    if (expectedSizeBytes !== undefined && expectedSizeBytes > this.limits.maxEntryBytes) return undefined
    const indexKey = this.#indexKey(key)
    const id = randomBytes(9).toString('base64url')
    const writer = new RedisEntryWriter(this.#context, {
      key,
      indexKey,
      id,
      bodyKey: `${indexKey}:${id}`,
      varyKey: meta.varyKey,
      metaJson: metaJson(meta),
      deleteAtMs: meta.deleteAtMs,
      deletionsSeen: this.#lookups.deletionsSeen(key, meta.requestTimeMs),
    })
    return this.#writers.add(key, writer)
  }

  async update(key: string, id: StoredEntry['id'], meta: EntryMeta): Promise<void> {
    this.#assertOpen()
    if (typeof id !== 'string') return
    const args = [id, meta.varyKey, metaJson(meta), this.#ttlMs(meta.deleteAtMs)]
    await this.#connection.run(UPDATE_SCRIPT, [this.#indexKey(key)], args)
  }

  async delete(key: string): Promise<void> {
    this.#assertOpen()
    this.#writers.abortKey(key)
    const sentMs = Date.now()
    const deleted = this.#connection
      .run(DELETE_SCRIPT, [this.#indexKey(key)], [randomInt(1, MAX_MARK_INCREMENT)])
      // the mark it left, as a lookup would see it: a write of a request sent since is checked against it
      .then((mark) => this.#lookups.looked(key, String(mark), sentMs))
    const settled = deleted.then(
      () => {},
      () => {},
    )
    this.#deleting.set(key, settled)
    settled.then(() => {
      if (this.#deleting.get(key) === settled) this.#deleting.delete(key)
    })
    await deleted
  }

  /**
   * Waits for a delete this store sent; fails at once while Redis is not connected, and after
   * timeoutSeconds (a caller's client may queue it for longer): the request then passes through.
   */
  async #afterDelete(deleting: Promise<void>): Promise<void> {
    const answered =
      this.client.status === 'ready' && (await settledWithin([deleting], this.limits.timeoutSeconds * 1000))
    if (!answered) throw new Error(DELETE_PENDING)
  }

  /** Drops the writes in progress and closes the client the store created (never a caller's client). */
  async close(): Promise<void> {
    if (!this.#open) return
    this.#open = false
    this.#writers.abortAll()
    // the deletes of their bodies and the commits under way go out before the client closes
    await this.#connection.close([...this.#inFlight])
  }

  /** The index hash of a primary key; the hash tag keeps all its keys in one Redis Cluster slot. */
  #indexKey(key: string): string {
    const digest = createHash('sha256').update(key).digest('hex').slice(0, 32)
    return `${this.limits.keyPrefix}{${digest}}`
  }

  /** Expiry of an entry, in ms: its remaining useful life, within [minTtlSeconds, maxTtlSeconds]. */
  #ttlMs(deleteAtMs: number): number {
    const maxMs = this.limits.maxTtlSeconds * 1000
    if (deleteAtMs === 0) return maxMs
    return Math.min(maxMs, Math.max(this.limits.minTtlSeconds * 1000, deleteAtMs - Date.now()))
  }

  #toVariant(indexKey: string, id: string, record: Buffer, inline: Buffer | null): FoundVariant {
    const text = record.toString('utf8')
    const seqEnd = text.indexOf(' ')
    const sizeEnd = text.indexOf(' ', seqEnd + 1)
    const sizeBytes = Number(text.slice(seqEnd + 1, sizeEnd))
    const meta = JSON.parse(text.slice(sizeEnd + 1)) as EntryMeta
    const entry = { ...meta, id, sizeBytes }
    const seq = Number(text.slice(0, seqEnd))
    if (inline !== null) {
      return { seq, entry: { ...entry, body: inline, readBody: () => (inline.length > 0 ? [inline] : []) } }
    }
    const bodyKey = `${indexKey}:${id}`
    const connection = this.#connection
    const { chunkBytes } = this.limits
    const failed = (error: unknown) => reportStoreError(this, 'read', error)
    const readBytes = (startBytes: number, endBytes: number) =>
      readChunks({ connection, bodyKey, startBytes, endBytes }, chunkBytes, failed)
    return { seq, entry: { ...entry, readBody: () => readBytes(0, sizeBytes), readRange: readBytes } }
  }

  #release(key: string, writer: RedisEntryWriter): void {
    this.#writers.release(key, writer)
  }

  #assertOpen(): void {
    if (!this.#open) throw new Error('undici-cache: RedisStore is closed')
  }
}

/** The metadata to store: `meta` without the fields of a StoredEntry (callers may pass one back). */
function metaJson(meta: EntryMeta): string {
  return JSON.stringify(metaOnly(meta))
}

/** A hit asks for up to this many bytes (and chunks) of a body ahead of its caller: a far Redis costs a round trip per window. */
const READ_AHEAD_BYTES = 1024 * 1024
const READ_AHEAD_CHUNKS = 16

const DELETE_PENDING = 'undici-cache: a delete of this key was sent and Redis has not answered it yet'

/** A delete moves its key's mark on by a random 1..2³¹: two marks a lookup could confuse are unlikely. */
const MAX_MARK_INCREMENT = 2 ** 31

/**
 * Reads a chunked body with GETRANGEs of chunkBytes, up to READ_AHEAD_BYTES / READ_AHEAD_CHUNKS ahead
 * once the reader has kept reading; throws, after telling `failed`, when it is gone or short (evicted,
 * or expired past the grace period) or Redis fails.
 */
async function* readChunks(
  read: { connection: RedisConnection; bodyKey: string; startBytes: number; endBytes: number },
  chunkBytes: number,
  failed: (error: unknown) => void,
): AsyncGenerator<Buffer> {
  const maxAhead = Math.min(READ_AHEAD_CHUNKS, Math.max(1, Math.floor(READ_AHEAD_BYTES / chunkBytes)))
  // one chunk first, twice as many after each: a caller that stops early has asked for little more
  let ahead = 1
  const asked: Promise<Buffer | Error>[] = []
  let askedBytes = read.startBytes
  while (askedBytes < read.endBytes || asked.length > 0) {
    while (asked.length < ahead && askedBytes < read.endBytes) {
      const expectedBytes = Math.min(chunkBytes, read.endBytes - askedBytes)
      asked.push(readChunk(read, askedBytes, expectedBytes))
      askedBytes += expectedBytes
    }
    const data = await asked.shift()
    if (data instanceof Error) {
      failed(data)
      throw data
    }
    if (data) yield data
    ahead = Math.min(maxAhead, ahead * 2)
  }
}

/** One GETRANGE, or the error it failed with (never a rejection: reads ahead may outlive their reader). */
async function readChunk(
  read: { connection: RedisConnection; bodyKey: string },
  offset: number,
  expectedBytes: number,
): Promise<Buffer | Error> {
  try {
    const data = (await read.connection.call('GETRANGE', [
      read.bodyKey,
      offset,
      offset + expectedBytes - 1,
    ])) as Buffer
    if (data.length === expectedBytes) return data
    return new Error(`undici-cache: Redis body ${read.bodyKey} is gone (evicted while read)`)
  } catch (error) {
    return asError(error)
  }
}
