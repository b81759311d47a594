/** A request under way, as Serving knows it. */
export interface UnderWay {
  /** Ends it with `reason` (the dispatcher is destroyed). */
  abort(reason: Error): void
}

/**
 * The requests under way through the cache, from dispatch to their end (served from the origin, the
 * store or a flight they waited on), so that closing can wait for them and destroying can end them
 * (undici's close and destroy contract).
 */
export class Serving {
  readonly #live = new Set<UnderWay>()
  #idle: (() => void)[] = []

  started(request: UnderWay): void {
    this.#live.add(request)
  }

  /** A request given to started() has ended. */
  finished(request: UnderWay): void {
    this.#live.delete(request)
    if (this.#live.size === 0 && this.#idle.length > 0) for (const resolve of this.#idle.splice(0)) resolve()
  }

  /** Resolves once no request is under way. */
  idle(): Promise<void> {
    if (this.#live.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  abortAll(reason: Error): void {
    for (const request of [...this.#live]) request.abort(reason)
  }
}
