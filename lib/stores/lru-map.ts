interface LruNode<K, V> {
  key: K
  value: V
  older: LruNode<K, V> | undefined
  newer: LruNode<K, V> | undefined
}

/**
 * A Map kept in least-recently-used order, whose oldest key is found in O(1). (A plain Map deleted
 * from its old end and appended at its new end must skip every deleted slot to find its oldest key,
 * until V8 rehashes it: ~6 µs per eviction at 10 000 entries.) With `maxKeys`, setting a key past that
 * many forgets the least recently used one.
 */
export class LruMap<K, V> {
  readonly #nodes = new Map<K, LruNode<K, V>>()
  readonly #maxKeys: number
  #oldest: LruNode<K, V> | undefined
  #newest: LruNode<K, V> | undefined

  constructor(maxKeys = Number.POSITIVE_INFINITY) {
    this.#maxKeys = maxKeys
  }

  get size(): number {
    return this.#nodes.size
  }

  /** The value under `key`, leaving its place in the order as it is. */
  get(key: K): V | undefined {
    return this.#nodes.get(key)?.value
  }

  /** Stores `value` as the most recently used (replacing the value under `key`, if any). */
  set(key: K, value: V): void {
    this.delete(key)
    const node: LruNode<K, V> = { key, value, older: this.#newest, newer: undefined }
    if (this.#newest) this.#newest.newer = node
    else this.#oldest = node
    this.#newest = node
    this.#nodes.set(key, node)
    if (this.#nodes.size > this.#maxKeys) this.delete(this.#oldest?.key as K)
  }

  /** Makes `key` the most recently used; false when it is not there. */
  touch(key: K): boolean {
    const node = this.#nodes.get(key)
    if (node === undefined) return false
    if (node !== this.#newest) this.set(key, node.value)
    return true
  }

  delete(key: K): boolean {
    const node = this.#nodes.get(key)
    if (node === undefined) return false
    this.#nodes.delete(key)
    if (node.older) node.older.newer = node.newer
    else this.#oldest = node.newer
    if (node.newer) node.newer.older = node.older
    else this.#newest = node.older
    // a node held elsewhere (a debugger's reference) must not keep the nodes after it alive
    node.older = undefined
    node.newer = undefined
    return true
  }

  /** The least recently used key; undefined when empty. */
  oldestKey(): K | undefined {
    return this.#oldest?.key
  }

  clear(): void {
    this.#nodes.clear()
    this.#oldest = undefined
    this.#newest = undefined
  }
}
