/**
 * Remembered results of a pure computation whose inputs repeat (header values, dates, origins):
 * a Map that empties itself when it reaches `maxEntries`, so it never grows past that.
 */
export class BoundedMemo<K, V> {
  readonly #values = new Map<K, V>()
  readonly #maxEntries: number

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries
  }

  get(key: K): V | undefined {
    return this.#values.get(key)
  }

  /** Remembers `value` under `key` and returns it. */
  set(key: K, value: V): V {
    if (this.#values.size >= this.#maxEntries) this.#values.clear()
    this.#values.set(key, value)
    return value
  }
}
