/**
 * The requests under way through the cache, from dispatch to their end (served from the origin, the
 * store or a flight they waited on), so that closing can wait for them (undici's close contract).
 */
export class Serving {
  #count = 0
  #idle: (() => void)[] = []

  started(): void {
    this.#count++
  }

  /** One request counted by started() has ended. */
  finished(): void {
    this.#count--
    if (this.#count === 0 && this.#idle.length > 0) for (const resolve of this.#idle.splice(0)) resolve()
  }

  /** Resolves once no request is under way. */
  idle(): Promise<void> {
    if (this.#count === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }
}
