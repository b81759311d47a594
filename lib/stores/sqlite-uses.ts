/** Uses of entries (for eviction, see sqlite-use-bits.ts) waiting to be written: one transaction for many. */
import { PathPeers } from './path-peers.js'

/** Uses wait this long to be written together (or less, with the next write transaction). */
export const USE_WRITE_DELAY_MS = 100

/** ...or are written at once when this many wait. */
const MAX_WAITING_USES = 1024

/** This process's open stores' uses, by database file: a write of one store takes those of the others. */
const waitingByFile = new PathPeers<WaitingUses>()

/** Every store's waiting uses of this process, written when the process exits. */
const waitingAnywhere = new Set<WaitingUses>()

let exitHookInstalled = false

/** Uses a write transaction took, by the store they waited in. */
export type TakenUses = ReadonlyMap<WaitingUses, readonly number[]>

/**
 * The entries one store recorded a use of and has not written yet. A write
 * transaction of any store of this process on the file takes them all (see take()), so its eviction
 * sees them; otherwise they are written USE_WRITE_DELAY_MS after the first, and when the process exits.
 */
export class WaitingUses {
  readonly #entryIds = new Set<number>()
  readonly #file: string | undefined
  /** Runs a write transaction that takes the waiting uses; false when it failed (the lock held, mostly). */
  readonly #write: () => boolean
  #timer: NodeJS.Timeout | undefined

  /** `file`: the database file (its path and inode); undefined for ':memory:'. */
  constructor(file: string | undefined, write: () => boolean) {
    this.#file = file
    this.#write = write
    waitingByFile.join(file, this)
  }

  add(entryId: number): void {
    if (this.#entryIds.size === 0) this.#startWaiting()
    this.#entryIds.add(entryId)
    if (this.#entryIds.size >= MAX_WAITING_USES) this.write()
    else this.#timer ??= setTimeout(() => this.write(), USE_WRITE_DELAY_MS).unref()
  }

  /** The uses waiting here and in this process's other stores on the file, to be written now, by store. */
  take(): TakenUses {
    const taken = new Map<WaitingUses, number[]>()
    for (const waiting of new Set([this, ...waitingByFile.of(this.#file)])) {
      if (waiting.#entryIds.size > 0) taken.set(waiting, [...waiting.#entryIds])
      waiting.#stopWaiting()
    }
    return taken
  }

  /**
   * Writes them now. When another connection holds the lock they wait for the next try (USE_WRITE_DELAY_MS
   * later, or the next write), unless MAX_WAITING_USES wait: then they are forgotten.
   */
  write(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#entryIds.size === 0 || this.#write()) return
    this.#waitForNextTry()
  }

  /**
   * Puts back the uses a write transaction took and then failed to commit, each where it waited (so
   * each store's count toward MAX_WAITING_USES is what it was). Take and restore run in one synchronous
   * transaction: no store closes between them.
   */
  static restore(taken: TakenUses): void {
    for (const [waiting, entryIds] of taken) waiting.#putBack(entryIds)
  }

  #putBack(entryIds: readonly number[]): void {
    if (entryIds.length === 0) return
    if (this.#entryIds.size === 0) this.#startWaiting()
    for (const entryId of entryIds) this.#entryIds.add(entryId)
    this.#waitForNextTry()
  }

  /**
   * Writes what waits and stops: the store is closing. When the lock is held, another store of this
   * process on the file takes them over, if there is one; otherwise they are dropped.
   */
  close(): void {
    const written = this.#entryIds.size === 0 || this.#write()
    const left = written ? [] : [...this.#entryIds]
    this.#stopWaiting()
    waitingByFile.leave(this.#file, this)
    const [heir] = waitingByFile.of(this.#file)
    if (heir) heir.#putBack(left)
  }

  /** After a write that failed: the uses wait USE_WRITE_DELAY_MS, unless MAX_WAITING_USES wait (forgotten). */
  #waitForNextTry(): void {
    if (this.#entryIds.size >= MAX_WAITING_USES) this.#stopWaiting()
    else this.#timer ??= setTimeout(() => this.write(), USE_WRITE_DELAY_MS).unref()
  }

  #startWaiting(): void {
    waitingAnywhere.add(this)
    if (exitHookInstalled) return
    exitHookInstalled = true
    process.on('exit', () => {
      for (const waiting of [...waitingAnywhere]) waiting.write()
    })
  }

  #stopWaiting(): void {
    this.#entryIds.clear()
    clearTimeout(this.#timer)
    this.#timer = undefined
    waitingAnywhere.delete(this)
  }
}
