/** A RedisStore's link to Redis: fails fast while Redis is unreachable, and runs Lua scripts. */
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import type { RedisClient } from './redis-options.js'

/** A Lua script and its SHA1, sent with EVALSHA (and EVAL once when Redis does not know it yet). */
export interface LuaScript {
  source: string
  sha1: string
}

export function luaScript(source: string): LuaScript {
  return { source, sha1: createHash('sha1').update(source).digest('hex') }
}

/** The events that end a connection attempt. */
type AttemptEvent = 'ready' | 'reconnecting' | 'end'
const ATTEMPT_EVENTS: readonly AttemptEvent[] = ['ready', 'reconnecting', 'end']

/** The parts of an ioredis client the store uses on a client it created itself. */
interface OwnedClient extends RedisClient {
  on(event: 'error', listener: (error: Error) => void): unknown
  once(event: AttemptEvent, listener: () => void): unknown
  off(event: AttemptEvent, listener: () => void): unknown
  disconnect(): void
}

type RedisConstructor = new (url: string, options: Record<string, unknown>) => OwnedClient

/** Loads a module by name, like `require`. */
export type ModuleLoader = (name: string) => unknown

/** What ioredis rejects a command with once its `commandTimeout` has passed. */
const COMMAND_TIMED_OUT = 'Command timed out'

/** States in which ioredis cannot send a command now (it would queue it or fail it). */
const DOWN_STATES = new Set(['reconnecting', 'close', 'end'])
const STARTING_STATES = new Set(['connecting', 'connect'])
/** The longest wait between two reconnection attempts of a created client, in ms. */
const MAX_RECONNECT_DELAY_MS = 1000

/**
 * After a command timed out (Redis frozen, say), commands fail at once until Redis answers a PING, with
 * a reply or an error reply: one is sent at once (a Redis slow on one command answers it), then one
 * every STALL_RETRY_MS, and only while connected (never into a caller's client's offline queue).
 * Not for an ioredis Cluster client: one frozen node would stall every other, and a PING goes to any.
 */
export const STALL_RETRY_MS = 1000

/** A client the store created waits this long, once closed, for its socket to end (ioredis: 2 s). */
const DISCONNECT_TIMEOUT_MS = 100

/** ioredis, loaded only when a RedisStore is created from a URL (it is an optional peer dependency). */
export function loadRedisConstructor(load: ModuleLoader = createRequire(import.meta.url)): RedisConstructor {
  let loaded: unknown
  try {
    loaded = load('ioredis')
  } catch (error) {
    throw new Error('undici-cache: RedisStore({ url }) needs the ioredis package (npm install ioredis)', {
      cause: error,
    })
  }
  const module = loaded as { Redis?: RedisConstructor; default?: RedisConstructor }
  return module.Redis ?? module.default ?? (loaded as RedisConstructor)
}

export class RedisConnection {
  readonly client: RedisClient
  readonly #owned: OwnedClient | undefined
  /** Until the first connection attempt of a created client is over: what commands wait for. */
  #startup: Promise<void> | undefined
  #closed = false
  /** A command timed out and Redis has not answered a PING since. */
  #stalled = false
  #stallTimer: NodeJS.Timeout | undefined
  readonly #mayStall: boolean
  /** The command timeout of a client the store created. */
  readonly #timeoutMs: number

  private constructor(
    client: RedisClient,
    owned?: { client: OwnedClient; startup: Promise<void>; timeoutMs: number },
  ) {
    this.client = client
    this.#mayStall = (client as { isCluster?: unknown }).isCluster !== true
    this.#owned = owned?.client
    this.#timeoutMs = owned?.timeoutMs ?? 0
    const startup = owned?.startup
    this.#startup = startup
    startup?.then(() => {
      this.#startup = undefined
    })
  }

  /** Wraps a client the caller owns. */
  static of(client: RedisClient): RedisConnection {
    return new RedisConnection(client)
  }

  /**
   * Creates an ioredis client that fails commands at once while disconnected (no offline queue, no
   * retry of a command) and keeps reconnecting in the background.
   */
  static open(url: string, timeoutMs: number, onError: (error: Error) => void): RedisConnection {
    const Redis = loadRedisConstructor()
    const client = new Redis(url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: timeoutMs,
      commandTimeout: timeoutMs,
      // how long disconnect() waits for the socket to end; its timer keeps the process alive even
      // when the socket has already closed (Redis gone), so the process exited 2 s after close()
      disconnectTimeout: DISCONNECT_TIMEOUT_MS,
      retryStrategy: (attempt: number) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS),
    })
    client.on('error', onError)
    return new RedisConnection(client, { client, startup: firstAttempt(client, timeoutMs), timeoutMs })
  }

  /** Throws when a command could not be sent now: Redis is down or not answering, or the store is closed. */
  assertReachable(): void {
    this.#assertConnected()
    if (this.#stalled)
      throw new Error('undici-cache: Redis did not answer in time (not answering a PING yet)')
  }

  /**
   * Sends a command that tidies up after a failed write (a DEL), even while Redis is not answering:
   * it runs once Redis answers again. Rejects at once while Redis is down. A caller's client outlives
   * the store's close(): it still goes out on it.
   */
  async tidy(command: string, args: (string | Buffer | number)[]): Promise<unknown> {
    if (this.#owned || !this.#closed) await this.#whenConnected()
    return this.client.callBuffer(command, args)
  }

  /** Sends one command; rejects at once while Redis is down or not answering. */
  async call(command: string, args: (string | Buffer | number)[]): Promise<unknown> {
    await this.#whenReachable()
    return this.#watch(this.client.callBuffer(command, args))
  }

  /** Runs a Lua script by SHA1, loading it with EVAL when Redis does not have it. */
  async run(script: LuaScript, keys: string[], args: (string | Buffer | number)[]): Promise<unknown> {
    await this.#whenReachable()
    try {
      return await this.#watch(
        this.client.callBuffer('EVALSHA', [script.sha1, keys.length, ...keys, ...args]),
      )
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error
      return this.#watch(this.client.callBuffer('EVAL', [script.source, keys.length, ...keys, ...args]))
    }
  }

  /** A command that timed out stalls the connection: the next ones fail at once instead of waiting too. */
  async #watch(pending: Promise<unknown>): Promise<unknown> {
    try {
      return await pending
    } catch (error) {
      if (isTimeout(error) && this.#mayStall && !this.#stalled) {
        this.#stalled = true
        this.#ping()
      }
      throw error
    }
  }

  /** Ends the stall once Redis answers, even with an error (ACL, MISCONF); asks again every STALL_RETRY_MS. */
  #ping(): void {
    if (this.#closed) return
    if (this.client.status !== 'ready') {
      this.#pingLater()
      return
    }
    this.client.callBuffer('PING', []).then(
      () => this.#answered(),
      (error: unknown) => {
        if (isTimeout(error) || this.client.status !== 'ready') this.#pingLater()
        else this.#answered()
      },
    )
  }

  #pingLater(): void {
    if (this.#closed) return
    this.#stallTimer = setTimeout(() => this.#ping(), STALL_RETRY_MS)
    this.#stallTimer.unref()
  }

  #answered(): void {
    this.#stalled = false
  }

  /**
   * Closes a client the store created, once the `inFlight` commands (deletes, commits) are answered or
   * its timeout has passed: a frozen Redis costs close() one timeout in all. A caller's client is left
   * open, and those commands finish there.
   */
  async close(inFlight: readonly Promise<unknown>[] = []): Promise<void> {
    if (this.#closed) return
    const owned = this.#owned
    if (owned?.status === 'ready' && !this.#stalled && !(await settledWithin(inFlight, this.#timeoutMs))) {
      this.#stalled = true
    }
    this.#closed = true
    clearTimeout(this.#stallTimer)
    if (owned === undefined) return
    // a Redis not answering would hold QUIT until it times out
    if (owned.status !== 'ready' || this.#stalled) {
      owned.disconnect()
      return
    }
    await owned.quit().catch(() => owned.disconnect())
  }

  async #whenReachable(): Promise<void> {
    await this.#whenConnected()
    this.assertReachable()
  }

  async #whenConnected(): Promise<void> {
    if (this.#startup && STARTING_STATES.has(this.client.status)) await this.#startup
    this.#assertConnected()
    if (this.#owned && this.client.status !== 'ready') {
      throw new Error(`undici-cache: Redis is not connected (${this.client.status})`)
    }
  }

  #assertConnected(): void {
    if (this.#closed) throw new Error('undici-cache: RedisStore is closed')
    const { status } = this.client
    if (DOWN_STATES.has(status)) throw new Error(`undici-cache: Redis is not connected (${status})`)
  }
}

/** Whether every one of `pending` settled within `ms`. */
export async function settledWithin(pending: readonly Promise<unknown>[], ms: number): Promise<boolean> {
  if (pending.length === 0) return true
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  const settled = Promise.allSettled(pending).then(() => true)
  return Promise.race([settled, late]).finally(() => clearTimeout(timer))
}

function isTimeout(error: unknown): boolean {
  return (error as Error)?.message === COMMAND_TIMED_OUT
}

/** Resolves when the first connection attempt is over (ready or failed), or after `timeoutMs` at the latest. */
function firstAttempt(client: OwnedClient, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs)
    timer.unref()
    const settle = () => {
      clearTimeout(timer)
      for (const event of ATTEMPT_EVENTS) client.off(event, settle)
      resolve()
    }
    for (const event of ATTEMPT_EVENTS) client.once(event, settle)
  })
}
