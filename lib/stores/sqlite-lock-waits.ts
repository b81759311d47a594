import type Database from 'better-sqlite3'
import { BUSY_TIMEOUT_MS, isBusy } from './sqlite-schema.js'

/** A background write (use mark, sweep) waits at most this long for the write lock, then gives up. */
const BACKGROUND_BUSY_TIMEOUT_MS = 0

/**
 * How long one connection's writes wait for the write lock. A write waits up to BUSY_TIMEOUT_MS (the
 * event loop with it: better-sqlite3 is synchronous). Once one has waited that long in vain, the lock
 * is taken to be held for long (another process's long transaction): until a write succeeds, writes
 * try it once and fail at once, so that a burst of writes does not block the process for seconds each.
 */
export class LockWaits {
  readonly #db: Database.Database
  #heldLong = false

  constructor(db: Database.Database) {
    this.#db = db
  }

  /** Runs a write that waits for the lock (unless it is held for long). */
  write<R>(write: () => R): R {
    try {
      const result = write()
      if (this.#heldLong) this.#setHeldLong(false)
      return result
    } catch (error) {
      if (isBusy(error) && !this.#heldLong) this.#setHeldLong(true)
      throw error
    }
  }

  /** Runs a write that may be skipped: no wait for the lock; false on any failure. */
  inBackground(write: () => void): boolean {
    try {
      this.withoutWaiting(write)
      return true
    } catch {
      return false
    }
  }

  /** Runs a write that does not wait for the lock: SQLITE_BUSY at once when another connection holds it. */
  withoutWaiting<R>(write: () => R): R {
    this.#db.pragma(`busy_timeout = ${BACKGROUND_BUSY_TIMEOUT_MS}`)
    try {
      return write()
    } finally {
      this.#db.pragma(`busy_timeout = ${this.#busyTimeoutMs()}`)
    }
  }

  #setHeldLong(heldLong: boolean): void {
    this.#heldLong = heldLong
    this.#db.pragma(`busy_timeout = ${this.#busyTimeoutMs()}`)
  }

  #busyTimeoutMs(): number {
    return this.#heldLong ? 0 : BUSY_TIMEOUT_MS
  }
}
