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
    if (this.#live.length === 0 && this.#idle.length > 0)
      for (const resolve of this.#idle.splice(0)) resolve()
  }

  /** Resolves once no request is under way. */
  idle(): Promise<void> {
    if (this.#live.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  abortAll(reason: Error): void {
    for (const request of [...this.#live]) request.abort(reason)
  }
}
