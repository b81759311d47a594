/** The responses being served from the store, so that closing can wait for them (undici's close contract). */
export class Serving {
  #count = 0
  #idle: (() => void)[] = []

  /** Counts one response; the returned function, called once or more, says it has finished. */
  started(): () => void {
    this.#count++
    let finished = false
    return () => {
      if (finished) return
      finished = true
      this.#count--
      if (this.#count === 0) for (const resolve of this.#idle.splice(0)) resolve()
    }
  }

  /** Resolves once no response is being served. */
  idle(): Promise<void> {
    if (this.#count === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }
}
