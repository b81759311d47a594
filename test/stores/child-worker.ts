/**
 * Forked by sqlite-processes.test.ts: one of several processes hammering one SqliteStore file with
 * random gets, puts (replacing variants, expiring, too large), updates, deletes and aborts for a while,
 * then writing a few final entries on request. Every body names its size and sha256 in its headers.
 */
import { createHash } from 'node:crypto'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { EntryMeta } from '../../lib/stores/store.js'
import { patternBody, sampleMeta } from './helpers.js'

/** The store settings every worker uses: small maxBytes, so that most commits evict. */
export const WORKER_STORE = { chunkBytes: 4096, maxBytes: 512 * 1024, maxEntries: 60, sweepIntervalMs: 200 }
export const WORKER_KEYS = 40
export const FINALS_PER_WORKER = 5
const MAX_BODY_BYTES = 40 * 1024
const VARY_KEYS = ['', 'a', 'b']

/** What a worker reports when its load phase ends. */
export interface LoadReport {
  ops: Record<string, number>
  /** Messages of errors thrown by store calls, with counts (none expected). */
  errors: Record<string, number>
  /** Bodies that vanished while read (replaced or evicted by another process: allowed). */
  goneWhileRead: number
  /** Write ids of every commit that returned. */
  committed: string[]
  /** Body bytes of those commits. */
  committedBytes: number
  latenciesMs: number[]
}

const [path, workerId, durationMs] = process.argv.slice(2)
const store = new SqliteStore({ path, ...WORKER_STORE })
if (store.failure) throw store.failure
const report: LoadReport = {
  ops: {},
  errors: {},
  goneWhileRead: 0,
  committed: [],
  committedBytes: 0,
  latenciesMs: [],
}
let writes = 0

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T

/** A body and metadata that describe each other; the write id is unique across workers. */
function newEntry(sizeBytes: number, deleteAtMs: number): { meta: EntryMeta; body: Buffer; writeId: string } {
  const writeId = `w${workerId}-${writes++}`
  const body = patternBody(sizeBytes, writes)
  const sha256 = createHash('sha256').update(body).digest('hex')
  const headers = { 'x-sha256': sha256, 'x-size': String(body.length), 'x-write': writeId }
  const meta = sampleMeta({ headers, varyKey: pick(VARY_KEYS), deleteAtMs, requestTimeMs: Date.now() })
  return { meta, body, writeId }
}

function put(key: string, abort = false): void {
  const deleteAtMs = pick([0, Number.MAX_SAFE_INTEGER, Date.now() - 1])
  const { meta, body, writeId } = newEntry(Math.floor(Math.random() * MAX_BODY_BYTES), deleteAtMs)
  const writer = store.put(key, meta, Math.random() < 0.5 ? body.length : undefined)
  if (writer === undefined) return
  const writeBytes = 1 + Math.floor(Math.random() * 8192)
  for (let offset = 0; offset < body.length; offset += writeBytes) {
    writer.write(body.subarray(offset, offset + writeBytes))
  }
  if (abort) {
    writer.abort()
    return
  }
  writer.commit()
  report.committed.push(writeId)
  report.committedBytes += body.length
}

/** Reads every variant under key; each must match its headers unless it vanished mid-read. */
async function getAndCheck(key: string): Promise<void> {
  for (const entry of store.get(key)) {
    const hash = createHash('sha256')
    let readBytes = 0
    try {
      for await (const chunk of entry.readBody()) {
        hash.update(chunk)
        readBytes += chunk.length
      }
    } catch (error) {
      if (!/is gone \(replaced or evicted while read\)/.test((error as Error).message)) throw error
      report.goneWhileRead += 1
      continue
    }
    const digest = hash.digest('hex')
    if (readBytes !== entry.sizeBytes || String(readBytes) !== entry.headers['x-size']) {
      throw new Error(`entry ${entry.id}: read ${readBytes} bytes, expected ${entry.headers['x-size']}`)
    }
    if (digest !== entry.headers['x-sha256']) throw new Error(`entry ${entry.id}: sha256 mismatch`)
  }
}

function update(key: string): void {
  const [entry] = store.get(key)
  if (entry) store.update(key, entry.id, { ...entry, headers: { ...entry.headers, 'x-freshened': '1' } })
}

const OPS: [string, number, (key: string) => void | Promise<void>][] = [
  ['get', 40, getAndCheck],
  ['put', 35, (key) => put(key)],
  ['update', 8, update],
  ['delete', 5, (key) => store.delete(key)],
  ['abort', 7, (key) => put(key, true)],
  ['sweep', 5, () => store.sweep()],
]

function randomOp(): [string, (key: string) => void | Promise<void>] {
  let roll = Math.random() * 100
  for (const [name, weight, run] of OPS) {
    roll -= weight
    if (roll < 0) return [name, run]
  }
  return ['get', getAndCheck]
}

/** Runs one op, timing it and counting what it threw. */
async function runOp(): Promise<void> {
  const [name, run] = randomOp()
  const startedMs = performance.now()
  try {
    await run(`k${Math.floor(Math.random() * WORKER_KEYS)}`)
    report.ops[name] = (report.ops[name] ?? 0) + 1
  } catch (error) {
    const message = `${name}: ${(error as { code?: string }).code ?? ''} ${(error as Error).message}`
    report.errors[message] = (report.errors[message] ?? 0) + 1
  }
  report.latenciesMs.push(performance.now() - startedMs)
}

const endMs = performance.now() + Number(durationMs)
while (performance.now() < endMs) {
  await runOp()
  await new Promise((resolve) => setImmediate(resolve))
}
process.send?.({ type: 'load', report })

process.on('message', (message: { type: string }) => {
  if (message.type === 'finals') {
    const keys: string[] = []
    for (let i = 0; i < FINALS_PER_WORKER; i++) {
      const key = `final-w${workerId}-${i}`
      const { meta, body } = newEntry(1024, 0)
      const writer = store.put(key, meta)
      writer?.write(body)
      writer?.commit()
      keys.push(key)
    }
    process.send?.({ type: 'finals', keys })
  } else {
    store.close()
    process.disconnect()
  }
})
