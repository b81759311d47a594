/** A property test: random store operations must match a plain model of what is stored. */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import type { CacheStore, EntryWriter } from '../../lib/stores/store.js'
import { patternBody, readBody, sampleMeta } from './helpers.js'

const KEYS = ['k0', 'k1', 'k2']
const VARY_KEYS = ['a', 'b']
/** The maxEntryBytes the store under test must have; above the contract's chunkBytes. */
export const MODEL_MAX_ENTRY_BYTES = 3000

type Op =
  | { kind: 'put'; key: number; vary: number; announcedBytes: number | null }
  | { kind: 'write'; writer: number; bytes: number; seed: number }
  | { kind: 'commit'; writer: number }
  | { kind: 'abort'; writer: number }
  | { kind: 'delete'; key: number }
  | { kind: 'get'; key: number }

interface ModelWriter {
  key: string
  varyKey: string
  writer: EntryWriter
  parts: Buffer[]
  bodyBytes: number
  /** Past maxEntryBytes, aborted, committed or deleted: nothing more to store. */
  done: boolean
}

type Model = Map<string, { varyKey: string; body: Buffer }[]>

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('put' as const),
    key: fc.nat(KEYS.length - 1),
    vary: fc.nat(VARY_KEYS.length - 1),
    announcedBytes: fc.option(fc.nat(4000)),
  }),
  fc.record({
    kind: fc.constant('write' as const),
    writer: fc.nat(),
    bytes: fc.nat(1500),
    seed: fc.nat(255),
  }),
  fc.record({ kind: fc.constant('commit' as const), writer: fc.nat() }),
  fc.record({ kind: fc.constant('abort' as const), writer: fc.nat() }),
  fc.record({ kind: fc.constant('delete' as const), key: fc.nat(KEYS.length - 1) }),
  fc.record({ kind: fc.constant('get' as const), key: fc.nat(KEYS.length - 1) }),
)

/** Runs random operation sequences on fresh stores (maxEntryBytes: MODEL_MAX_ENTRY_BYTES, other limits roomy). */
export async function runContractModel(makeStore: () => Promise<CacheStore>): Promise<void> {
  await fc.assert(
    fc.asyncProperty(fc.array(opArbitrary, { maxLength: 40 }), async (ops) => {
      const store = await makeStore()
      try {
        await runOps(store, ops)
      } finally {
        await store.close()
      }
    }),
    { numRuns: 60 },
  )
}

async function runOps(store: CacheStore, ops: Op[]): Promise<void> {
  const model: Model = new Map()
  const writers: ModelWriter[] = []
  for (const op of ops) {
    if (op.kind === 'put') putOp(store, writers, op)
    else if (op.kind === 'get') await checkKey(store, model, KEYS[op.key] as string)
    else if (op.kind === 'delete') await deleteOp(store, model, writers, KEYS[op.key] as string)
    else {
      const target = writers[op.writer % Math.max(writers.length, 1)]
      if (target === undefined) continue
      if (op.kind === 'write') await writeOp(target, patternBody(op.bytes, op.seed))
      else if (op.kind === 'commit') await commitOp(model, target)
      else abortOp(target)
    }
  }
  for (const key of KEYS) await checkKey(store, model, key)
}

function putOp(store: CacheStore, writers: ModelWriter[], op: Extract<Op, { kind: 'put' }>): void {
  const key = KEYS[op.key] as string
  const varyKey = VARY_KEYS[op.vary] as string
  // sent after every op so far: a store refuses a response to a request sent before its key's last
  // delete (SqliteStore by time, RedisStore by what the request's lookup saw)
  const meta = sampleMeta({ varyKey, requestTimeMs: Date.now() + 1 })
  const writer = store.put(key, meta, op.announcedBytes ?? undefined)
  const refused = op.announcedBytes !== null && op.announcedBytes > MODEL_MAX_ENTRY_BYTES
  assert.equal(writer === undefined, refused)
  if (writer) writers.push({ key, varyKey, writer, parts: [], bodyBytes: 0, done: false })
}

async function writeOp(target: ModelWriter, chunk: Buffer): Promise<void> {
  await target.writer.write(chunk)
  if (target.done) return
  target.parts.push(chunk)
  target.bodyBytes += chunk.length
  if (target.bodyBytes > MODEL_MAX_ENTRY_BYTES) target.done = true
}

async function commitOp(model: Model, target: ModelWriter): Promise<void> {
  await target.writer.commit()
  if (target.done) return
  target.done = true
  const others = (model.get(target.key) ?? []).filter((variant) => variant.varyKey !== target.varyKey)
  model.set(target.key, [{ varyKey: target.varyKey, body: Buffer.concat(target.parts) }, ...others])
}

function abortOp(target: ModelWriter): void {
  target.writer.abort()
  target.done = true
}

async function deleteOp(store: CacheStore, model: Model, writers: ModelWriter[], key: string): Promise<void> {
  await store.delete(key)
  model.delete(key)
  for (const target of writers) if (target.key === key) target.done = true
}

async function checkKey(store: CacheStore, model: Model, key: string): Promise<void> {
  const entries = await store.get(key)
  const expected = model.get(key) ?? []
  assert.deepEqual(
    entries.map((entry) => entry.varyKey),
    expected.map((variant) => variant.varyKey),
    `variants of ${key}`,
  )
  for (const [index, entry] of entries.entries()) {
    const body = await readBody(entry)
    assert.equal(entry.sizeBytes, body.length)
    assert.ok(body.equals(expected[index]?.body as Buffer), `body of ${key} ${entry.varyKey}`)
  }
}
