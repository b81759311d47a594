/** How long closing waits for one store call a request left behind. */
export const STORE_CALL_WAIT_MAX_MS = 10_000

/** A request under way, as Serving knows it. */
export interface UnderWay {
  /** Ends it with `reason` (the dispatcher is destroyed). */
  abort(reason: Error): void
  /** Its place in Serving's list (kept by Serving). */
  slot: number
}

/**
 * The requests under way through the cache, from dispatch to their end (served from the origin, the
 * store or a flight they waited on), so that closing can wait for them and destroying can end them
 * (undici's close and destroy contract).
 */
export class Serving {
  /** The requests under way, in no order (an array with slots: no hashing on every request). */
  readonly #live: UnderWay[] = []
  /** Store calls made for no request in particular (write-backs, removals), until they settle. */
  readonly #storeCalls = new Set<Promise<void>>()
  #idle: (() => void)[] = []

  started(request: UnderWay): void {
    request.slot = this.#live.length
    this.#live.push(request)
  }

  /** A request given to started() has ended (once). */
  finished(request: UnderWay): void {
    const last = this.#live.pop() as UnderWay
    if (last !== request) {
      this.#live[request.slot] = last
      last.slot = request.slot
    }
    this.#settleIdle()
  }

  /**
   * A store call that may outlive the request that made it (a 304's write-back, a removal): closing
   * waits for it, so the store can be closed next, but no longer than STORE_CALL_WAIT_MAX_MS (a store
   * that never answers, such as a client of your own queueing commands while Redis is down). Its
   * failure is the caller's to handle.
   */
  track(call: Promise<unknown>): void {
    let timer: NodeJS.Timeout | undefined
    const settled: Promise<void> = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, STORE_CALL_WAIT_MAX_MS).unref()
      call.then(
        () => resolve(),
        () => resolve(),
      )
    }).then(() => {
      clearTimeout(timer)
      this.#settled(settled)
    })
    this.#storeCalls.add(settled)
  }

  #settled(call: Promise<void>): void {
    this.#storeCalls.delete(call)
    this.#settleIdle()
  }

  #settleIdle(): void {
    if (this.#live.length === 0 && this.#storeCalls.size === 0 && this.#idle.length > 0)
      for (const resolve of this.#idle.splice(0)) resolve()
  }

  /** Resolves once no request is under way and no store call made for one is left. */
  idle(): Promise<void> {
    if (this.#live.length === 0 && this.#storeCalls.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  abortAll(reason: Error): void {
    for (const request of [...this.#live]) request.abort(reason)
  }
}
