import { PathPeers } from './path-peers.js'
import type { CommitArgs } from './sqlite-rows.js'
import { isTransient } from './sqlite-schema.js'
import type { SqliteTables } from './sqlite-tables.js'

/** A queued commit waits at most this long for the transaction it shares with the commits after it. */
export const COMMIT_DELAY_MS = 5

/** The queue is committed at once when it holds this many commits... */
export const MAX_QUEUED_COMMITS = 256

/** ...or this many bytes of bodies and metadata (inline bodies wait in memory until then). */
export const MAX_QUEUED_BYTES = 4 * 1024 * 1024

interface Queued {
  args: CommitArgs
  /** Told when this commit failed alone (the entry was not stored). */
  failed: (error: unknown) => void
}

/** The queues of this process with commits waiting, by database file. */
const waitingByPath = new PathPeers<CommitQueue>()

/** Every queue of this process with commits waiting, committed when the process exits. */
const waitingQueues = new Set<CommitQueue>()

let exitHookInstalled = false

/**
 * Group commit. A commit joins a queue that is written in one transaction COMMIT_DELAY_MS after its
 * first commit (sooner when it grows past MAX_QUEUED_COMMITS or MAX_QUEUED_BYTES): one write
 * transaction costs about 8 page writes and a lock, whatever it holds, so a queue of n costs little more
 * than one. This process never misses its own commits: a read of a key with a queued commit (by any
 * store of this process on the same file) commits the queue first. Other processes see an entry once
 * its queue is committed; a crash loses the queue (never a half-written entry). The queue is also
 * committed when the process exits, and before the store deletes, updates, sweeps, counts or closes.
 */
export class CommitQueue {
  readonly #tables: SqliteTables
  readonly #path: string | undefined
  #queued: Queued[] = []
  #queuedBytes = 0
  /** The keys of the queued commits. */
  readonly #keys = new Set<string>()
  #timer: NodeJS.Timeout | undefined

  /** `path`: the resolved database file; undefined for ':memory:' (no other connection can read it). */
  constructor(tables: SqliteTables, path: string | undefined) {
    this.#tables = tables
    this.#path = path
  }

  /** Queues a commit; `failed` is told if it could not be made. */
  commit(args: CommitArgs, failed: (error: unknown) => void): void {
    this.#queued.push({ args, failed })
    this.#queuedBytes += args.data.length + args.draft.metaBytes
    this.#keys.add(args.draft.key)
    if (this.#queued.length === 1) this.#startWaiting()
    if (this.#queued.length >= MAX_QUEUED_COMMITS || this.#queuedBytes >= MAX_QUEUED_BYTES) this.flush()
  }

  /** Commits the queues of this process's stores on this file that hold a commit under `key`. */
  flushKey(key: string): void {
    if (this.#keys.has(key)) this.flush()
    for (const peer of waitingByPath.of(this.#path)) if (peer.#keys.has(key)) peer.flush()
  }

  /** Commits the queues of every store of this process on this file. */
  flushFile(): void {
    this.flush()
    for (const peer of waitingByPath.of(this.#path)) peer.flush()
  }

  /**
   * Commits what waits in one transaction. If that fails for a reason that would fail each of them
   * (disk full, the lock held past the busy timeout: waiting again for each would block for minutes),
   * all fail; otherwise they are committed one by one, so one bad entry fails alone.
   */
  flush(): void {
    const batch = this.#queued
    if (batch.length === 0) return
    this.#queued = []
    this.#queuedBytes = 0
    this.#keys.clear()
    this.#stopWaiting()
    try {
      this.#tables.commitMany(batch.map((queued) => queued.args))
    } catch (error) {
      if (isTransient(error)) for (const queued of batch) queued.failed(error)
      else for (const queued of batch) this.#commitAlone(queued)
    }
  }

  #commitAlone(queued: Queued): void {
    try {
      this.#tables.commit(queued.args)
    } catch (error) {
      queued.failed(error)
    }
  }

  #startWaiting(): void {
    this.#timer = setTimeout(() => this.flush(), COMMIT_DELAY_MS).unref()
    waitingQueues.add(this)
    waitingByPath.join(this.#path, this)
    if (!exitHookInstalled) {
      exitHookInstalled = true
      process.on('exit', flushEveryQueue)
    }
  }

  #stopWaiting(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    waitingQueues.delete(this)
    waitingByPath.leave(this.#path, this)
  }
}

/** Commits every queue still waiting (the process is exiting; a failure only loses that queue). */
function flushEveryQueue(): void {
  for (const queue of [...waitingQueues]) queue.flush()
}
