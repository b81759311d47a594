import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { CacheStore, EntryMeta, EntryWriter, StoredEntry } from '../../lib/stores/store.js'

const MiB = 1024 * 1024

const tick = () => new Promise((resolve) => setImmediate(resolve))

async function* later(chunks: Iterable<Buffer> | AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  for await (const chunk of chunks) {
    await tick()
    yield chunk
  }
}

/**
 * A real store whose every answer arrives on a later turn of the event loop, the way a network
 * store's does: it drives the interceptor's asynchronous paths with MemoryStore's semantics.
 */
export class AsyncStore implements CacheStore {
  readonly #inner: CacheStore

  constructor(inner: CacheStore) {
    this.#inner = inner
  }

  async get(key: string): Promise<StoredEntry[]> {
    await tick()
    const entries = await this.#inner.get(key)
    return entries.map((entry) => ({ ...entry, body: undefined, readBody: () => later(entry.readBody()) }))
  }

  put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined {
    const writer = this.#inner.put(key, meta, expectedSizeBytes)
    if (!writer) return undefined
    return {
      write: async (chunk) => {
        await tick()
        await writer.write(chunk)
      },
      commit: async () => {
        await tick()
        await writer.commit()
      },
      abort: () => writer.abort(),
    }
  }

  async update(key: string, id: StoredEntry['id'], meta: EntryMeta): Promise<void> {
    await tick()
    await this.#inner.update(key, id, meta)
  }

  async delete(key: string): Promise<void> {
    await tick()
    await this.#inner.delete(key)
  }

  async close(): Promise<void> {
    await this.#inner.close()
  }
}

/**
 * An asynchronous MemoryStore whose bodies, read in pieces of `pieceBytes`, are gone after
 * `goneAfterBytes` (as the contract allows when an entry is evicted or replaced during a read).
 */
export class VanishingBodies extends AsyncStore {
  readonly #goneAfterBytes: number
  readonly #pieceBytes: number

  constructor(goneAfterBytes: number, pieceBytes: number) {
    super(new MemoryStore({ maxEntryBytes: 32 * 1024 * 1024, maxBytes: 64 * 1024 * 1024 }))
    this.#goneAfterBytes = goneAfterBytes
    this.#pieceBytes = pieceBytes
  }

  override async get(key: string): Promise<StoredEntry[]> {
    const entries = await super.get(key)
    return entries.map((entry) => ({ ...entry, readBody: () => this.#vanishing(entry.readBody()) }))
  }

  async *#vanishing(body: Iterable<Buffer> | AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let readBytes = 0
    for await (const piece of body) {
      for (let offset = 0; offset < piece.length; offset += this.#pieceBytes) {
        if (readBytes >= this.#goneAfterBytes)
          throw new Error('undici-cache: a stored body is gone (replaced or evicted while read)')
        const part = piece.subarray(offset, offset + this.#pieceBytes)
        readBytes += part.length
        yield part
      }
    }
  }
}

/**
 * A MemoryStore whose writes fail once an entry has taken `failAfterBytes` (a full disk, say):
 * they throw, or with `later` reject on a later turn, as a network store's would.
 */
export class FailingWrites implements CacheStore {
  readonly #inner = new MemoryStore({ maxEntryBytes: 32 * MiB, maxBytes: 64 * MiB })
  readonly #failAfterBytes: number
  readonly #later: boolean

  constructor(failAfterBytes: number, later = false) {
    this.#failAfterBytes = failAfterBytes
    this.#later = later
  }

  get(key: string): StoredEntry[] | Promise<StoredEntry[]> {
    return this.#inner.get(key)
  }

  put(key: string, meta: EntryMeta, expectedSizeBytes?: number): EntryWriter | undefined {
    const writer = this.#inner.put(key, meta, expectedSizeBytes)
    if (!writer) return undefined
    let writtenBytes = 0
    return {
      write: (chunk) => {
        writtenBytes += chunk.length
        const full = writtenBytes > this.#failAfterBytes
        if (!this.#later) {
          if (full) throw new Error('ENOSPC: no space left on device')
          return writer.write(chunk)
        }
        return new Promise<void>((resolve, reject) =>
          setImmediate(() =>
            full ? reject(new Error('ENOSPC: no space left on device')) : resolve(writer.write(chunk)),
          ),
        )
      },
      commit: () => writer.commit(),
      abort: () => writer.abort(),
    }
  }

  update(key: string, id: StoredEntry['id'], meta: EntryMeta) {
    return this.#inner.update(key, id, meta)
  }

  delete(key: string) {
    return this.#inner.delete(key)
  }

  close() {
    return this.#inner.close()
  }
}
