/** undici's bodyTimeout for bodies served from the store, where no socket is there to time out. */
import { type Dispatcher, errors } from 'undici'

/** undici's default bodyTimeout (Client, Pool and Agent options). */
export const DEFAULT_BODY_TIMEOUT_MS = 300_000

/** The request's bodyTimeout, else the dispatcher's: 0 means none (as in undici). */
export function bodyTimeoutMsOf(opts: Dispatcher.DispatchOptions, dispatcherMs: number): number {
  const { bodyTimeout } = opts
  return typeof bodyTimeout === 'number' && bodyTimeout >= 0 ? bodyTimeout : dispatcherMs
}

/**
 * Fails a body whose caller keeps it paused for `timeoutMs`, as undici's bodyTimeout fails a response
 * whose data stops: a caller that drops a body unread would otherwise hold it (and a body file) for ever.
 */
export class PauseTimer {
  readonly #timeoutMs: number
  readonly #expired: () => void
  #timer: NodeJS.Timeout | undefined

  /** `expired` is given undici's BodyTimeoutError. */
  constructor(timeoutMs: number, expired: (error: Error) => void) {
    this.#timeoutMs = timeoutMs
    this.#expired = () => expired(new errors.BodyTimeoutError())
  }

  start(): void {
    if (this.#timeoutMs > 0 && this.#timer === undefined)
      this.#timer = setTimeout(this.#expired, this.#timeoutMs).unref()
  }

  stop(): void {
    if (this.#timer === undefined) return
    clearTimeout(this.#timer)
    this.#timer = undefined
  }
}
