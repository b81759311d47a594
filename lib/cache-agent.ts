import { Agent, Dispatcher, errors } from 'undici'
import { EventRelays } from './event-relays.js'
import { newApiHandler } from './handlers/legacy-handler.js'
import { interceptorWith } from './interceptor.js'
import {
  assertKnownOptions,
  type CacheInterceptorOptions,
  INTERCEPTOR_OPTIONS,
  isOptionsObject,
} from './options.js'
import type { Serving } from './serving.js'
import { SqliteStore } from './stores/sqlite-store.js'
import type { CacheStore } from './stores/store.js'

export interface CacheAgentOptions extends CacheInterceptorOptions {
  /** undici Agent options for the inner Agent, or an existing Dispatcher to wrap. */
  agent?: Agent.Options | Dispatcher
}

/** undici's dispatcher events, told by the inner dispatcher. */
const INNER_EVENTS = ['drain', 'connect', 'disconnect', 'connectionError']

function isDispatcher(value: unknown): value is Dispatcher {
  return typeof (value as Dispatcher | undefined)?.dispatch === 'function'
}

/** Fails a dispatch as undici's closed dispatchers do, whichever handler API the caller speaks. */
function refuse(handler: Dispatcher.DispatchHandler, error: Error): void {
  const legacy = handler as { onError?: (error: Error) => void }
  if (typeof legacy.onError === 'function') legacy.onError(error)
  else if (handler.onResponseError)
    handler.onResponseError(null as unknown as Dispatcher.DispatchController, error)
  else throw error
}

/**
 * An undici Dispatcher made of an Agent with the cache interceptor composed on, usable with
 * `setGlobalDispatcher`, `fetch`, `request`, `stream` and `pipeline`.
 */
export class CacheAgent extends Dispatcher {
  readonly #inner: Dispatcher
  readonly #composed: Dispatcher
  #ownedStore: CacheStore | undefined
  readonly #serving: Serving
  readonly #relays: EventRelays
  #closed = false
  #destroyed = false
  #closing: Promise<void> | undefined

  constructor(options: CacheAgentOptions = {}) {
    super()
    if (!isOptionsObject(options)) throw new TypeError('CacheAgent options must be an object')
    assertKnownOptions('CacheAgent', options, [...INTERCEPTOR_OPTIONS, 'agent'])
    const { agent, ...cacheOptions } = options
    if (agent !== undefined && (typeof agent !== 'object' || agent === null)) {
      throw new TypeError('CacheAgent option agent must be Agent options or a Dispatcher')
    }
    // undici checks the Agent's options; the default store is made only once every option is valid
    this.#inner = isDispatcher(agent) ? agent : new Agent(agent)
    const { interceptor, serving } = interceptorWith(cacheOptions, () => {
      this.#ownedStore = new SqliteStore()
      return this.#ownedStore
    })
    this.#serving = serving
    this.#composed = this.#inner.compose(interceptor)
    // the inner dispatcher's events are this one's: a caller that dispatch() told `false` waits for 'drain'
    const emitter = (dispatcher: Dispatcher) => dispatcher as unknown as NodeJS.EventEmitter
    this.#relays = new EventRelays(emitter(this.#inner), emitter(this), INNER_EVENTS)
    // undici's compose() wraps a dispatcher in a Proxy, which calls these with the Proxy as `this`
    this.close = this.close.bind(this) as CacheAgent['close']
    this.destroy = this.destroy.bind(this) as CacheAgent['destroy']
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // undici 6's callers (Node 20's global fetch) get each repeated field line on its own
    const adapted = newApiHandler(handler, opts)
    if (this.#closed) {
      refuse(handler, this.#destroyed ? new errors.ClientDestroyedError() : new errors.ClientClosedError())
      return false
    }
    return this.#composed.dispatch(opts, adapted)
  }

  override removeAllListeners(...event: [string | symbol] | []): this {
    ;(super.removeAllListeners as (...event: unknown[]) => this)(...event)
    this.#relays.sync()
    return this
  }

  /** As undici's dispatchers: true once close() or destroy() was called. */
  get closed(): boolean {
    return this.#closed
  }

  /** As undici's dispatchers: true once destroy() was called. */
  get destroyed(): boolean {
    return this.#destroyed
  }

  /** undici 8: the inner Agent's WebSocket limits (its `webSocket` option), which WebSocket reads here. */
  get webSocketOptions(): unknown {
    return (this.#inner as { webSocketOptions?: unknown }).webSocketOptions
  }

  /** undici 8: the inner Agent's EventSource limits (its `eventSource` option). */
  get eventSourceOptions(): unknown {
    return (this.#inner as { eventSourceOptions?: unknown }).eventSourceOptions
  }

  override close(): Promise<void>
  override close(callback: () => void): void
  override close(callback?: () => void): Promise<void> | undefined {
    assertCallback(callback)
    // as undici's: closing a destroyed dispatcher fails; closing one being closed waits for it
    const closing = this.#destroyed ? Promise.reject(new errors.ClientDestroyedError()) : this.#closeOnce()
    if (!callback) return closing
    callBack(closing, callback)
    return undefined
  }

  /**
   * Like undici's close: new requests are refused, those under way finish first (hits from the store,
   * waiters, readers that fell behind included), the inner dispatcher serving them until then; then
   * the dispatcher counts as destroyed, as undici's does once closed.
   */
  #closeOnce(): Promise<void> {
    if (this.#closing) return this.#closing
    this.#closed = true
    this.#closing = this.#serving
      .idle()
      .then(() => (this.#destroyed ? undefined : this.#inner.close()))
      // the store it made is closed also when the inner dispatcher was closed by its owner first
      .finally(() => this.#ownedStore?.close())
      .finally(() => {
        this.#destroyed = true
      })
    return this.#closing
  }

  override destroy(): Promise<void>
  override destroy(error: Error | null): Promise<void>
  override destroy(callback: () => void): void
  override destroy(error: Error | null, callback: () => void): void
  override destroy(
    errorOrCallback?: Error | null | (() => void),
    callback?: () => void,
  ): Promise<void> | undefined {
    const error = typeof errorOrCallback === 'function' ? null : (errorOrCallback ?? null)
    const done = typeof errorOrCallback === 'function' ? errorOrCallback : callback
    assertCallback(done)
    this.#closed = true
    this.#destroyed = true
    // like undici's destroy: the requests under way fail at once, those served from the store included
    this.#serving.abortAll(error ?? new errors.ClientDestroyedError())
    const destroying = this.#inner.destroy(error).finally(() => this.#ownedStore?.close())
    if (!done) return destroying.then(() => undefined)
    callBack(destroying, done)
    return undefined
  }
}

/** As undici's dispatchers, a callback that is not a function is refused at once. */
function assertCallback(callback: unknown): void {
  if (callback !== undefined && typeof callback !== 'function')
    throw new errors.InvalidArgumentError('invalid callback')
}

/** Calls a close or destroy callback as undici's dispatchers do: `(null, null)`, or `(error, null)`. */
function callBack(settled: Promise<unknown>, callback: () => void): void {
  const told = callback as (error: Error | null, data: null) => void
  settled.then(
    () => told(null, null),
    (error: unknown) => told(error as Error, null),
  )
}
