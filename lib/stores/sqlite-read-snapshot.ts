import type Database from 'better-sqlite3'

/** The open snapshots of this process, by database file. */
const snapshotsByPath = new Map<string, Set<ReadSnapshot>>()

/**
 * One read transaction shared by the reads of a turn of the event loop. In WAL mode each read
 * transaction takes and drops a lock on the -shm file: ~4 µs of a ~5 µs lookup by key. The reads of
 * one turn (many requests arriving together) share a snapshot, which ends with the turn, or before this
 * process writes to the file through any connection: this process sees its own writes at once, other
 * processes' from the next turn.
 */
export class ReadSnapshot {
  readonly #db: Database.Database
  readonly #path: string | undefined
  readonly #begin: Database.Statement
  readonly #commit: Database.Statement
  #open = false

  /** `path`: the resolved database file, shared with this process's other connections; undefined for ':memory:'. */
  constructor(db: Database.Database, path: string | undefined) {
    this.#db = db
    this.#path = path
    this.#begin = db.prepare('BEGIN')
    this.#commit = db.prepare('COMMIT')
    if (path === undefined) return
    const peers = snapshotsByPath.get(path) ?? new Set()
    peers.add(this)
    snapshotsByPath.set(path, peers)
  }

  /** Runs a read inside the turn's snapshot, starting one if none is open. */
  read<R>(read: () => R): R {
    if (!this.#open && !this.#db.inTransaction) {
      this.#begin.run()
      this.#open = true
      setImmediate(() => this.#end())
    }
    return read()
  }

  /** Ends the snapshots of every connection of this process on the file: this one is about to write. */
  beforeWrite(): void {
    this.#end()
    if (this.#path === undefined) return
    for (const peer of snapshotsByPath.get(this.#path) ?? []) peer.#end()
  }

  /** Ends this connection's snapshot and stops hearing of the others' writes (it closes). */
  close(): void {
    this.#end()
    if (this.#path === undefined) return
    const peers = snapshotsByPath.get(this.#path)
    peers?.delete(this)
    if (peers?.size === 0) snapshotsByPath.delete(this.#path)
  }

  #end(): void {
    if (!this.#open) return
    this.#open = false
    if (this.#db.open && this.#db.inTransaction) this.#commit.run()
  }
}
