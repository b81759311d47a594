import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import Database from 'better-sqlite3'
import fc from 'fast-check'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { patternBody, sampleMeta } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-totals-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const BASE_MS = 1_700_000_000_000

type Op =
  | { kind: 'store'; key: number; vary: number; bytes: number; lifetimeSeconds: number; queued: boolean }
  | { kind: 'delete'; key: number }
  | { kind: 'update'; key: number; extraHeaderBytes: number }
  | { kind: 'sweep'; atSeconds: number }
  | { kind: 'settle' }

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('store' as const),
      key: fc.nat(3),
      vary: fc.nat(1),
      bytes: fc.nat(3000),
      lifetimeSeconds: fc.integer({ min: 1, max: 20 }),
      queued: fc.boolean(),
    }),
    weight: 4,
  },
  fc.record({ kind: fc.constant('delete' as const), key: fc.nat(3) }),
  fc.record({ kind: fc.constant('update' as const), key: fc.nat(3), extraHeaderBytes: fc.nat(300) }),
  fc.record({ kind: fc.constant('sweep' as const), atSeconds: fc.nat(20) }),
  fc.record({ kind: fc.constant('settle' as const) }),
)

function recount(path: string) {
  const raw = new Database(path, { readonly: true })
  try {
    return {
      counted: raw
        .prepare(
          'SELECT COALESCE(SUM(size_bytes), 0) AS totalBytes, COUNT(*) AS entryCount FROM entries WHERE complete = 1',
        )
        .get(),
      row: raw.prepare('SELECT bytes AS totalBytes, entries AS entryCount FROM totals').get(),
    }
  } finally {
    raw.close()
  }
}

async function run(store: SqliteStore, ops: Op[], pending: Promise<unknown>[]): Promise<void> {
  let seed = 0
  for (const op of ops) {
    if (op.kind === 'store') {
      const meta = sampleMeta({ varyKey: `v${op.vary}`, deleteAtMs: BASE_MS + op.lifetimeSeconds * 1000 })
      const writer = store.put(`k${op.key}`, meta)
      if (!writer) continue
      writer.write(patternBody(op.bytes, seed++))
      if (op.queued && writer.commitSoon) pending.push(writer.commitSoon())
      else await writer.commit()
    } else if (op.kind === 'delete') {
      store.delete(`k${op.key}`)
    } else if (op.kind === 'update') {
      const entry = store.get(`k${op.key}`)[0]
      const headers = { ...sampleMeta().headers, 'x-pad': 'p'.repeat(op.extraHeaderBytes) }
      if (entry) store.update(`k${op.key}`, entry.id, sampleMeta({ varyKey: entry.varyKey, headers }))
    } else if (op.kind === 'sweep') {
      store.sweep(BASE_MS + op.atSeconds * 1000)
    } else {
      await Promise.all(pending.splice(0))
    }
  }
  await Promise.all(pending.splice(0))
}

// The totals are summed per transaction and written once (lib/stores/sqlite-totals.ts): whatever
// mix of group commits, replaced variants, evictions, updates, deletes and sweeps ran, they must
// equal a recount of the complete rows, in the row and in stats().
test('the totals equal a recount after any mix of queued and direct writes', async () => {
  let run_ = 0
  await fc.assert(
    fc.asyncProperty(fc.array(opArbitrary, { maxLength: 30 }), async (ops) => {
      const path = join(dir, `totals-${run_++}.db`)
      const store = new SqliteStore({ path, chunkBytes: 1024, maxEntries: 4, maxBytes: 8000 })
      try {
        await run(store, ops, [])
        const stats = store.stats()
        const { counted, row } = recount(path)
        assert.deepEqual(stats, counted)
        assert.deepEqual(row, counted)
        assert.ok(stats.entryCount <= 4 && stats.totalBytes <= 8000)
      } finally {
        store.close()
      }
    }),
    { numRuns: 60 },
  )
})
