import type { EntryMeta, StoredEntry } from './store.js'

/** The writes in progress per key, so that delete(key) can cancel them (RFC 9111 §4.4). */
export class WritersInProgress<W extends { abort(): void }> {
  readonly #byKey = new Map<string, Set<W>>()

  add(key: string, writer: W): W {
    let writers = this.#byKey.get(key)
    if (writers === undefined) {
      writers = new Set()
      this.#byKey.set(key, writers)
    }
    writers.add(writer)
    return writer
  }

  /** A writer that committed or aborted is no longer in progress. */
  release(key: string, writer: W): void {
    const writers = this.#byKey.get(key)
    writers?.delete(writer)
    if (writers?.size === 0) this.#byKey.delete(key)
  }

  abortKey(key: string): void {
    for (const writer of [...(this.#byKey.get(key) ?? [])]) writer.abort()
  }

  abortAll(): void {
    for (const key of [...this.#byKey.keys()]) this.abortKey(key)
  }
}

/**
 * The metadata to store: `meta` without the fields of a StoredEntry (callers may pass one back);
 * `meta` itself when it has none of them. For reading (serialising) only.
 */
export function metaOnly(meta: EntryMeta): EntryMeta {
  const entry = meta as Partial<StoredEntry>
  const anyEntryField = entry.id ?? entry.sizeBytes ?? entry.body ?? entry.readBody ?? entry.readRange
  if (anyEntryField === undefined) return meta
  const {
    id: _id,
    sizeBytes: _sizeBytes,
    body: _body,
    readBody: _readBody,
    readRange: _readRange,
    ...rest
  } = meta as StoredEntry
  return rest
}
