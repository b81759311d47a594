/** Builds the dispatcher each benchmarked client name stands for. */
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Agent, type Dispatcher, interceptors } from 'undici'
import type { CacheStore } from '../lib/stores/store.js'
import type { ClientName } from './scenarios.js'

export interface BenchClient {
  dispatcher: Dispatcher
  /** Whether this client is expected to cache at all. */
  caches: boolean
  /** Closes the dispatcher, releases the store and removes any file it made. */
  close(): Promise<void>
}

async function oursWith(store: CacheStore, cleanUp?: () => Promise<void>): Promise<BenchClient> {
  const { cacheInterceptor } = await import('../lib/interceptor.js')
  const agent = new Agent()
  const dispatcher = agent.compose(cacheInterceptor({ store }))
  return {
    dispatcher,
    caches: true,
    async close() {
      await agent.close()
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

async function sqliteClient(tmpDir: string): Promise<BenchClient> {
  const { SqliteStore } = await import('../lib/stores/sqlite-store.js')
  const dir = await mkdtemp(join(tmpDir, 'sqlite-'))
  const store = new SqliteStore({ path: join(dir, 'cache.db') })
  return oursWith(store, () => rm(dir, { recursive: true, force: true }))
}

async function memoryClient(): Promise<BenchClient> {
  const { MemoryStore } = await import('../lib/stores/memory-store.js')
  return oursWith(new MemoryStore({}))
}

/**
 * A fresh client; `tmpDir` holds any file it creates (the runner removes the directory too).
 * Our library is imported lazily, so the baselines run even while it is in flux.
 */
export async function createClient(name: ClientName, tmpDir: string): Promise<BenchClient> {
  switch (name) {
    case 'raw':
      return rawClient()
    case 'undici-cache-builtin':
      return builtinClient()
    case 'undici-cache-sqlite':
      return sqliteClient(tmpDir)
    case 'undici-cache-memory':
      return memoryClient()
  }
}
