/** How long closing waits, once no request is under way, for the store calls they left behind. */
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
  /** False once destroyed: nothing is waited for but the requests, which are being ended. */
  #waitsForStoreCalls = true
  /** Set while idle() waits for store calls alone: it resolves then at the latest. */
  #deadline: NodeJS.Timeout | undefined
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
   * waits for it, so the store can be closed next. Its failure is the caller's to handle.
   */
  track(call: Promise<unknown>): void {
    const settled: Promise<void> = call.then(
      () => this.#settled(settled),
      () => this.#settled(settled),
    )
    this.#storeCalls.add(settled)
  }

  #settled(call: Promise<void>): void {
    this.#storeCalls.delete(call)
    this.#settleIdle()
  }

  /**
   * Resolves once no request is under way and no store call made for one is left, or
   * STORE_CALL_WAIT_MAX_MS after the last request ended (a store that never answers, such as Redis
   * frozen after a command went out).
   */
  idle(): Promise<void> {
    if (this.#live.length === 0 && !this.#awaitsStoreCalls()) return Promise.resolve()
    const idle = new Promise<void>((resolve) => this.#idle.push(resolve))
    this.#settleIdle()
    return idle
  }

  #awaitsStoreCalls(): boolean {
    return this.#waitsForStoreCalls && this.#storeCalls.size > 0
  }

  #settleIdle(): void {
    if (this.#live.length > 0 || this.#idle.length === 0) return
    // a timer of its own, not unref'd: the process stays up for close() to resolve
    if (this.#awaitsStoreCalls())
      this.#deadline ??= setTimeout(() => this.#resolveIdle(), STORE_CALL_WAIT_MAX_MS)
    else this.#resolveIdle()
  }

  #resolveIdle(): void {
    clearTimeout(this.#deadline)
    this.#deadline = undefined
    for (const resolve of this.#idle.splice(0)) resolve()
  }

  /** destroy(): every request under way ends with `reason`; store calls are no longer waited for. */
  abortAll(reason: Error): void {
    this.#waitsForStoreCalls = false
    for (const request of [...this.#live]) request.abort(reason)
    this.#settleIdle()
  }
}
