/** Uses of entries (for eviction, see sqlite-use-bits.ts) waiting to be written: one transaction for many. */
import { PathPeers } from './path-peers.js'

/** Uses wait this long to be written together (or less, with the next write transaction). */
export const USE_WRITE_DELAY_MS = 100

/** ...or are written at once when this many wait. */
const MAX_WAITING_USES = 1024

/** This process's waiting uses, by database file: a write of one store takes those of the others. */
const waitingByPath = new PathPeers<WaitingUses>()

/** Every store's waiting uses of this process, written when the process exits. */
const waitingAnywhere = new Set<WaitingUses>()

let exitHookInstalled = false

/**
 * The entries one store recorded a use of and has not written yet. A write
 * transaction of any store of this process on the file takes them all (see take()), so its eviction
 * sees them; otherwise they are written USE_WRITE_DELAY_MS after the first, and when the process exits.
 */
export class WaitingUses {
  readonly #entryIds = new Set<number>()
  readonly #path: string | undefined
  /** Runs a write transaction that takes the waiting uses; false when another connection held the lock. */
  readonly #write: () => boolean
  #timer: NodeJS.Timeout | undefined

  /** `path`: the database file (resolved); undefined for ':memory:'. */
  constructor(path: string | undefined, write: () => boolean) {
    this.#path = path
    this.#write = write
  }

  add(entryId: number): void {
    if (this.#entryIds.size === 0) this.#startWaiting()
    this.#entryIds.add(entryId)
    if (this.#entryIds.size >= MAX_WAITING_USES) this.write()
    else this.#timer ??= setTimeout(() => this.write(), USE_WRITE_DELAY_MS).unref()
  }

  /** The uses waiting here and in this process's other stores on the file, to be written now. */
  take(): number[] {
    const taken = [...this.#entryIds]
    this.#stopWaiting()
    for (const peer of waitingByPath.of(this.#path)) {
      taken.push(...peer.#entryIds)
      peer.#stopWaiting()
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
    if (this.#entryIds.size >= MAX_WAITING_USES) this.#stopWaiting()
    else this.#timer = setTimeout(() => this.write(), USE_WRITE_DELAY_MS).unref()
  }

  /** Writes what waits (if the lock is had) and stops: the store is closing. */
  close(): void {
    this.write()
    this.#stopWaiting()
  }

  #startWaiting(): void {
    waitingByPath.join(this.#path, this)
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
    waitingByPath.leave(this.#path, this)
    waitingAnywhere.delete(this)
  }
}
