/** Builds the dispatcher each benchmarked client name stands for. */
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Agent, type Dispatcher, interceptors } from 'undici'
import type { CacheStore } from '../lib/stores/store.js'
import { CeilingAgent } from './ceiling.js'
import type { ClientName } from './scenarios.js'

export interface BenchClient {
  dispatcher: Dispatcher
  /** Whether this client is expected to cache at all. */
  caches: boolean
  /** Our store, for the clients that have one (filled before measuring by `fill` scenarios). */
  store?: CacheStore
  /** Closes the dispatcher, releases the store and removes any file it made. */
  close(): Promise<void>
}

/** Size limits given to our stores; each store's defaults apply to those left out. */
export interface StoreLimits {
  maxBytes?: number
  maxEntryBytes?: number
  maxEntries?: number
}

/** How a client is set up beyond its defaults. */
export interface ClientSetup {
  limits?: StoreLimits
  /** An SQLite file to open (and keep) instead of a new one in the temp dir. */
  sqlitePath?: string
}

/** Ours as `setGlobalDispatcher(new CacheAgent())` users get it: a CacheAgent over its own Agent. */
async function oursWith(store: CacheStore, cleanUp?: () => Promise<void>): Promise<BenchClient> {
  const { CacheAgent } = await import('../lib/cache-agent.js')
  const dispatcher = new CacheAgent({ store })
  return {
    dispatcher,
    caches: true,
    store,
    async close() {
      await dispatcher.close()
      await store.close()
      await cleanUp?.()
    },
  }
}

function rawClient(): BenchClient {
  const agent = new Agent()
  return { dispatcher: agent, caches: false, close: () => agent.close() }
}

function builtinClient(): BenchClient {
  const agent = new Agent()
  return { dispatcher: agent.compose(interceptors.cache()), caches: true, close: () => agent.close() }
}

function ceilingClient(): BenchClient {
  const ceiling = new CeilingAgent()
  return { dispatcher: ceiling, caches: false, close: () => ceiling.close() }
}

async function sqliteClient(tmpDir: string, setup: ClientSetup): Promise<BenchClient> {
  const { SqliteStore } = await import('../lib/stores/sqlite-store.js')
  if (setup.sqlitePath !== undefined) {
    return oursWith(new SqliteStore({ ...setup.limits, path: setup.sqlitePath }))
  }
  const dir = await mkdtemp(join(tmpDir, 'sqlite-'))
  const store = new SqliteStore({ ...setup.limits, path: join(dir, 'cache.db') })
  return oursWith(store, () => rm(dir, { recursive: true, force: true }))
}

async function memoryClient(setup: ClientSetup): Promise<BenchClient> {
  const { MemoryStore } = await import('../lib/stores/memory-store.js')
  return oursWith(new MemoryStore({ ...setup.limits }))
}

/**
 * A fresh client; `tmpDir` holds any file it creates (the runner removes the directory too).
 * Our library is imported lazily, so the baselines run even while it is in flux.
 */
export async function createClient(
  name: ClientName,
  tmpDir: string,
  setup: ClientSetup = {},
): Promise<BenchClient> {
  switch (name) {
    case 'raw':
      return rawClient()
    case 'undici-cache-builtin':
      return builtinClient()
    case 'undici-cache-sqlite':
      return sqliteClient(tmpDir, setup)
    case 'undici-cache-memory':
      return memoryClient(setup)
    case 'ceiling':
      return ceilingClient()
  }
}
