const NONE: ReadonlySet<never> = new Set()

/**
 * This process's objects of one kind (hot tiers, commit queues) grouped by database file, so that the
 * stores of this process on one file can reach each other. `undefined` stands for ':memory:', which
 * no other store can open: such objects have no peers.
 */
export class PathPeers<T> {
  readonly #byPath = new Map<string, Set<T>>()

  join(path: string | undefined, member: T): void {
    if (path === undefined) return
    const members = this.#byPath.get(path) ?? new Set()
    members.add(member)
    this.#byPath.set(path, members)
  }

  leave(path: string | undefined, member: T): void {
    if (path === undefined) return
    const members = this.#byPath.get(path)
    members?.delete(member)
    if (members?.size === 0) this.#byPath.delete(path)
  }

  /** The members on `path` (the caller included, if it joined). */
  of(path: string | undefined): ReadonlySet<T> {
    return (path !== undefined && this.#byPath.get(path)) || NONE
  }
}
