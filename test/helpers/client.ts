import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { type Dispatcher, request } from 'undici'
import { CacheAgent, type CacheAgentOptions } from '../../lib/cache-agent.js'
import type { CacheRequestOptions } from '../../lib/options.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { CacheStore } from '../../lib/stores/store.js'

export interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

export interface Options {
  method?: string
  headers?: Record<string, string>
  cache?: CacheRequestOptions
}

/** One request through a dispatcher, body read whole (tests only use small bodies here). */
export async function send(dispatcher: Dispatcher, url: string, options: Options = {}): Promise<Reply> {
  const res = await request(url, {
    dispatcher,
    method: (options.method ?? 'GET') as Dispatcher.HttpMethod,
    headers: options.headers,
    ...(options.cache ? { cache: options.cache } : {}),
  } as Parameters<typeof request>[1])
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
}

const tempDirs: string[] = []
process.on('exit', () => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
})

/** A temp folder removed when the test process exits. */
export function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'undici-cache-test-'))
  tempDirs.push(dir)
  return dir
}

/** The stores every integration case runs against. */
export const storeKinds: { name: string; make: () => CacheStore }[] = [
  { name: 'MemoryStore', make: () => new MemoryStore() },
  { name: 'SqliteStore', make: () => new SqliteStore({ path: path.join(tempDir(), 'cache.db') }) },
]

/** A CacheAgent over a fresh store; closing it closes the store too. */
export function makeAgent(store: CacheStore, options: Omit<CacheAgentOptions, 'store'> = {}) {
  const agent = new CacheAgent({ ...options, store })
  return {
    agent,
    store,
    close: async () => {
      await agent.close()
      await store.close()
    },
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
