/**
 * Another emitter's events told as this one's, listened to on it only while someone listens here: a
 * dispatcher shared by many CacheAgents keeps no listener of theirs for good (nor keeps them alive).
 */
export class EventRelays {
  readonly #source: NodeJS.EventEmitter
  readonly #target: NodeJS.EventEmitter
  readonly #events: ReadonlySet<string | symbol>
  readonly #relays = new Map<string | symbol, (...args: unknown[]) => void>()
  readonly #added = (event: string | symbol) => {
    if (!this.#events.has(event) || this.#relays.has(event)) return
    const relay = (...args: unknown[]) => this.#target.emit(event, ...args)
    this.#relays.set(event, relay)
    this.#source.on(event, relay)
  }
  readonly #removed = () => this.sync()

  constructor(source: NodeJS.EventEmitter, target: NodeJS.EventEmitter, events: readonly string[]) {
    this.#source = source
    this.#target = target
    this.#events = new Set(events)
    this.sync()
  }

  /**
   * Drops the relays of events nobody listens to any more, and hooks onto the target's listeners again
   * if they went (its removeAllListeners() takes them too).
   */
  sync(): void {
    for (const [event, relay] of this.#relays) {
      if (this.#target.listenerCount(event) > 0) continue
      this.#relays.delete(event)
      this.#source.off(event, relay)
    }
    if (!this.#target.listeners('newListener').includes(this.#added))
      this.#target.on('newListener', this.#added)
    if (!this.#target.listeners('removeListener').includes(this.#removed))
      this.#target.on('removeListener', this.#removed)
  }
}
