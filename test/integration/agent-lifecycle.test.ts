import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { Agent, type Dispatcher } from 'undici'
import { CacheAgent } from '../../lib/cache-agent.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { tempDir } from '../helpers/client.js'

const run = promisify(execFile)

// close() and destroy() in every order, against a plain undici Agent's answers in the same run

type Step = (dispatcher: Dispatcher) => Promise<string>

const settled = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'resolved',
    (error: { code?: string }) => `rejected ${error.code}`,
  )

const thrown = (call: () => unknown): string => {
  try {
    call()
    return 'no throw'
  } catch (error) {
    return `threw ${(error as { code?: string }).code}`
  }
}

const sequences: Record<string, Step> = {
  'close, then close': async (d) => {
    await d.close()
    return `${await settled(d.close())}, destroyed ${(d as Agent).destroyed}`
  },
  'destroy, then close': async (d) => {
    await d.destroy()
    return settled(d.close())
  },
  'destroy, then destroy': async (d) => {
    await d.destroy()
    return settled(d.destroy())
  },
  'close, then destroy': async (d) => {
    await d.close()
    return settled(d.destroy())
  },
  'close twice at once': async (d) => {
    const [first, second] = [d.close(), d.close()]
    return `${await settled(first)} ${await settled(second)}`
  },
  'close and destroy at once': async (d) => {
    const closing = d.close()
    return `${await settled(closing)} ${await settled(d.destroy())}`
  },
  'destroy, then close(callback)': async (d) => {
    await d.destroy()
    return new Promise((resolve) =>
      d.close(((error: { code?: string } | null, data: unknown) =>
        resolve(`${error?.code} ${data}`)) as unknown as () => void),
    )
  },
  'close(5)': async (d) => thrown(() => d.close(5 as unknown as () => void)),
  'destroy(null, 5)': async (d) => thrown(() => d.destroy(null, 5 as unknown as () => void)),
}

test('CacheAgent close() and destroy() answer in every order as a plain undici Agent does', async () => {
  const answers = async (make: () => Dispatcher) => {
    const out: Record<string, string> = {}
    for (const [name, step] of Object.entries(sequences)) out[name] = await step(make())
    return out
  }
  const plain = await answers(() => new Agent())
  const cached = await answers(() => new CacheAgent({ store: new MemoryStore() }))
  assert.deepEqual(cached, plain)
  // what undici 7 and 8 answer, so that the comparison above cannot pass on two wrong answers
  assert.deepEqual(plain, {
    'close, then close': 'rejected UND_ERR_DESTROYED, destroyed true',
    'destroy, then close': 'rejected UND_ERR_DESTROYED',
    'destroy, then destroy': 'resolved',
    'close, then destroy': 'resolved',
    'close twice at once': 'resolved resolved',
    'close and destroy at once': 'resolved resolved',
    'destroy, then close(callback)': 'UND_ERR_DESTROYED null',
    'close(5)': 'threw UND_ERR_INVALID_ARG',
    'destroy(null, 5)': 'threw UND_ERR_INVALID_ARG',
  })
})

test('close(callback) and destroy(callback) call back with (null, null), as undici Agent does', async () => {
  const calls: unknown[][] = []
  for (const dispatcher of [new Agent(), new CacheAgent({ store: new MemoryStore() })]) {
    await new Promise<void>((resolve) =>
      dispatcher.close((...args: unknown[]) => resolve(void calls.push(args))),
    )
    const other =
      dispatcher instanceof CacheAgent ? new CacheAgent({ store: new MemoryStore() }) : new Agent()
    await new Promise<void>((resolve) =>
      other.destroy((...args: unknown[]) => resolve(void calls.push(args))),
    )
  }
  assert.deepEqual(calls, [
    [null, null],
    [null, null],
    [null, null],
    [null, null],
  ])
})

/** The child's script: a CacheAgent with its default store (under the working directory) over an Agent its owner closes first. */
const CHILD_SCRIPT = `
import { readdirSync, readlinkSync } from 'node:fs'
import { Agent } from 'undici'
import { CacheAgent } from ${JSON.stringify(pathToFileURL('lib/cache-agent.ts').href)}
const openFiles = () => readdirSync('/proc/self/fd').filter((fd) => {
  try { return readlinkSync('/proc/self/fd/' + fd).startsWith(process.cwd()) } catch { return false }
}).length
process.chdir(process.env.CACHE_DIR)
const inner = new Agent()
const cache = new CacheAgent({ agent: inner })
const before = openFiles()
await inner.close()
const closed = await cache.close().then(() => 'resolved', (error) => 'rejected ' + error.name)
process.stdout.write(JSON.stringify({ before: before > 0, closed, after: openFiles() }))
`

test('close() closes the store a CacheAgent made also when its inner dispatcher was closed by its owner first', async () => {
  const env = { ...process.env, CACHE_DIR: tempDir() }
  const args = ['--import', 'tsx', '--input-type=module', '-e', CHILD_SCRIPT]
  const { stdout } = await run(process.execPath, args, { env })
  // the inner Agent's close() refuses (it was destroyed): so does the CacheAgent's, as undici's would
  assert.deepEqual(JSON.parse(stdout), { before: true, closed: 'rejected ClientDestroyedError', after: 0 })
})
