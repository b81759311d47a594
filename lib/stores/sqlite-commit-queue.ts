import type { CommitArgs } from './sqlite-rows.js'
import type { SqliteTables } from './sqlite-tables.js'

interface Queued {
  args: CommitArgs
  resolve: () => void
  reject: (error: unknown) => void
}

/**
 * Group commit. The first commit of a turn of the event loop runs at once, so a lone request pays
 * no delay; the commits that follow in the same turn (many responses ending together) wait for the
 * next turn and share one transaction, which costs about what one commit costs.
 */
export class CommitQueue {
  readonly #tables: SqliteTables
  #queued: Queued[] = []
  #turnBusy = false

  constructor(tables: SqliteTables) {
    this.#tables = tables
  }

  commit(args: CommitArgs): Promise<void> {
    if (this.#turnBusy) {
      return new Promise((resolve, reject) => this.#queued.push({ args, resolve, reject }))
    }
    this.#turnBusy = true
    setImmediate(() => {
      this.#turnBusy = false
      this.flush()
    })
    try {
      this.#tables.commit(args)
      return Promise.resolve()
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Commits what waits, in one transaction; if that fails, one by one, so one bad entry fails alone. */
  flush(): void {
    const batch = this.#queued
    if (batch.length === 0) return
    this.#queued = []
    try {
      this.#tables.commitMany(batch.map((queued) => queued.args))
      for (const queued of batch) queued.resolve()
    } catch {
      for (const queued of batch) this.#commitAlone(queued)
    }
  }

  #commitAlone(queued: Queued): void {
    try {
      this.#tables.commit(queued.args)
      queued.resolve()
    } catch (error) {
      queued.reject(error)
    }
  }
}
