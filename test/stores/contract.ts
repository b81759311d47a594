/** The behaviour every CacheStore must show, registered as node:test cases by runStoreContract. */
import assert from 'node:assert/strict'
import { after, describe, type TestContext, test } from 'node:test'
import { type CacheStore, type EntryWriter, MAX_VARIANTS_PER_KEY } from '../../lib/stores/store.js'
import { MODEL_MAX_ENTRY_BYTES, runContractModel } from './contract-model.js'
import { entryAt, metaOf, patternBody, readBody, readChunks, sampleMeta, storeBody } from './helpers.js'

/** The limits a contract case asks its store for. */
export interface ContractLimits {
  maxBytes: number
  maxEntryBytes: number
  maxEntries: number
}

/** Makes a fresh, empty store with these limits. */
export type MakeStore = (limits: ContractLimits) => Promise<CacheStore> | CacheStore

/** chunkBytes a chunking store should use under the contract, so that CHUNKED_BYTES spans chunks. */
export const CONTRACT_CHUNK_BYTES = 1024

const CHUNKED_BYTES = 3.5 * CONTRACT_CHUNK_BYTES
const ROOMY: ContractLimits = { maxBytes: 64 * 1024 * 1024, maxEntryBytes: 8 * 1024 * 1024, maxEntries: 1000 }
const MINUTE_MS = 61_000

/** What a store kind may leave out of the contract. */
export interface ContractFeatures {
  /**
   * Why the store does not evict by maxBytes and maxEntries itself (e.g. Redis leaves it to its
   * maxmemory policy); those cases are then skipped with this reason.
   */
  noEvictionReason?: string
  /** Whether a body of several chunks is read by range (`readRange`): from the offset, not from its start. */
  readsRanges?: boolean
}

/** Registers the contract cases for one store kind; `cleanup` runs after them all. */
export function runStoreContract(
  name: string,
  makeStore: MakeStore,
  cleanup?: () => void,
  features: ContractFeatures = {},
): void {
  const evictionCase = { skip: features.noEvictionReason ?? false }
  describe(`${name} store contract`, () => {
    if (cleanup) after(cleanup)
    const open = async (limits: Partial<ContractLimits> = {}) => makeStore({ ...ROOMY, ...limits })

    test('round trips an empty body', async () => {
      const store = await open()
      assert.equal(await storeBody(store, 'k', sampleMeta(), Buffer.alloc(0)), true)
      const entries = await store.get('k')
      assert.equal(entries.length, 1)
      const entry = entryAt(entries)
      assert.equal(entry.sizeBytes, 0)
      assert.deepEqual(metaOf(entry), sampleMeta())
      assert.deepEqual(await readChunks(entry), [])
      await store.close()
    })

    test('round trips a small body written in one piece, with the body fast path', async () => {
      const store = await open()
      const body = patternBody(200, 1)
      // every field the cache gives, writeId too (a reader that fell behind finds its entry by it)
      const meta = sampleMeta({ sharedCache: true, writeId: 'process-tag.1' })
      await storeBody(store, 'k', meta, body, 1000)
      const entry = entryAt(await store.get('k'))
      assert.deepEqual(metaOf(entry), meta)
      assert.equal(entry.sizeBytes, 200)
      assert.deepEqual(entry.body, body)
      assert.deepEqual(await readBody(entry), body)
      await store.close()
    })

    test('round trips a body of 3.5 chunks byte for byte', async () => {
      const store = await open()
      const body = patternBody(CHUNKED_BYTES, 2)
      await storeBody(store, 'k', sampleMeta(), body, 300)
      const entry = entryAt(await store.get('k'))
      assert.equal(entry.sizeBytes, CHUNKED_BYTES)
      assert.deepEqual(await readBody(entry), body)
      assert.deepEqual(await readBody(entry), body, 'a body reads again')
      await store.close()
    })

    test(`reads a range of a body of 3.5 chunks ${features.readsRanges ? 'exactly (readRange)' : 'from its start (no readRange)'}`, async () => {
      const store = await open()
      const body = patternBody(CHUNKED_BYTES, 5)
      await storeBody(store, 'k', sampleMeta(), body, 300)
      const entry = entryAt(await store.get('k'))
      if (!features.readsRanges) {
        assert.equal(entry.readRange, undefined)
        await store.close()
        return
      }
      const { readRange } = entry
      assert.ok(readRange)
      const last = CHUNKED_BYTES - 1
      for (const [start, end] of [
        [0, 1],
        [1000, 1100],
        [CONTRACT_CHUNK_BYTES - 1, 2 * CONTRACT_CHUNK_BYTES],
        [last, CHUNKED_BYTES],
        [0, CHUNKED_BYTES],
      ]) {
        const chunks: Buffer[] = []
        for await (const chunk of readRange(start as number, end as number)) chunks.push(chunk)
        assert.deepEqual(Buffer.concat(chunks), body.subarray(start, end), `${start}-${end}`)
      }
      await store.close()
    })

    test('shows nothing before commit', async () => {
      const store = await open()
      const writer = store.put('k', sampleMeta())
      assert.ok(writer)
      await writer.write(patternBody(CHUNKED_BYTES, 3))
      await writer.write(patternBody(100, 4))
      assert.deepEqual(await store.get('k'), [])
      await writer.commit()
      assert.equal((await store.get('k')).length, 1)
      await store.close()
    })

    test('abort leaves nothing, and later writes and commit are ignored', async () => {
      const store = await open()
      const writer = store.put('k', sampleMeta())
      assert.ok(writer)
      await writer.write(patternBody(CHUNKED_BYTES, 5))
      writer.abort()
      writer.abort()
      await writer.write(patternBody(10, 6))
      await writer.commit()
      assert.deepEqual(await store.get('k'), [])
      await store.close()
    })

    test('writes after commit are ignored', async () => {
      const store = await open()
      const writer = store.put('k', sampleMeta())
      assert.ok(writer)
      await writer.write(patternBody(10, 7))
      await writer.commit()
      await writer.write(patternBody(10, 8))
      await writer.commit()
      writer.abort()
      const entries = await store.get('k')
      assert.equal(entries.length, 1)
      assert.deepEqual(await readBody(entryAt(entries, 0)), patternBody(10, 7))
      await store.close()
    })

    test('replaces the same variant, keeps other variants, newest first', async () => {
      const store = await open()
      await storeBody(store, 'k', sampleMeta({ varyKey: 'a' }), patternBody(50, 1))
      await storeBody(store, 'k', sampleMeta({ varyKey: 'b' }), patternBody(CHUNKED_BYTES, 2))
      await storeBody(store, 'k', sampleMeta({ varyKey: 'a' }), patternBody(CHUNKED_BYTES, 3))
      await storeBody(store, 'other', sampleMeta({ varyKey: 'a' }), patternBody(5, 4))
      const entries = await store.get('k')
      assert.deepEqual(
        entries.map((entry) => entry.varyKey),
        ['a', 'b'],
      )
      assert.deepEqual(await readBody(entryAt(entries, 0)), patternBody(CHUNKED_BYTES, 3))
      assert.deepEqual(await readBody(entryAt(entries, 1)), patternBody(CHUNKED_BYTES, 2))
      assert.notEqual(entries[0]?.id, entries[1]?.id)
      assert.equal((await store.get('other')).length, 1)
      await store.close()
    })

    test(`keeps at most ${MAX_VARIANTS_PER_KEY} variants of a key, dropping the oldest committed`, async () => {
      const store = await open()
      for (let n = 0; n < MAX_VARIANTS_PER_KEY + 2; n++) {
        await storeBody(
          store,
          'k',
          sampleMeta({ varyKey: `v${n}` }),
          patternBody(n === 5 ? CHUNKED_BYTES : 10, n),
        )
      }
      await storeBody(store, 'k', sampleMeta({ varyKey: 'v2' }), patternBody(10, 99))
      const kept = (await store.get('k')).map((entry) => entry.varyKey)
      assert.equal(kept.length, MAX_VARIANTS_PER_KEY)
      assert.deepEqual(kept.slice(0, 2), ['v2', `v${MAX_VARIANTS_PER_KEY + 1}`])
      // replacing v2 added no variant: nothing more went
      assert.ok(!kept.includes('v0') && !kept.includes('v1') && kept.includes('v3'), kept.join())
      await store.close()
    })

    test('orders variants by commit, not by put', async () => {
      const store = await open()
      const first = store.put('k', sampleMeta({ varyKey: 'first' }))
      const second = store.put('k', sampleMeta({ varyKey: 'second' }))
      assert.ok(first && second)
      await second.write(patternBody(10, 1))
      await second.commit()
      await first.write(patternBody(10, 2))
      await first.commit()
      assert.deepEqual(
        (await store.get('k')).map((entry) => entry.varyKey),
        ['first', 'second'],
      )
      await store.close()
    })

    test('update replaces the metadata and keeps the body', async () => {
      const store = await open()
      const body = patternBody(CHUNKED_BYTES, 9)
      await storeBody(store, 'k', sampleMeta(), body)
      const entry = entryAt(await store.get('k'))
      const fresher = sampleMeta({
        headers: { etag: '"v2"' },
        responseTimeMs: 5,
        deleteAtMs: 99,
        sharedCache: true,
        writeId: 'process-tag.2',
      })
      await store.update('k', entry.id, fresher)
      const updated = entryAt(await store.get('k'))
      assert.equal(updated.id, entry.id)
      assert.deepEqual(metaOf(updated), fresher)
      assert.deepEqual(await readBody(updated), body)
      await store.close()
    })

    test('update accepts a StoredEntry as metadata and ignores unknown ids', async () => {
      const store = await open()
      await storeBody(store, 'k', sampleMeta(), patternBody(10, 1))
      const entry = entryAt(await store.get('k'))
      await store.update('k', entry.id, { ...entry, statusMessage: 'Fine' })
      await store.update('k', -1, sampleMeta({ statusMessage: 'Lost' }))
      await store.update('k', 'no-such-id', sampleMeta({ statusMessage: 'Lost' }))
      await store.update('other', entry.id, sampleMeta({ statusMessage: 'Lost' }))
      const updated = entryAt(await store.get('k'))
      assert.deepEqual(metaOf(updated), sampleMeta({ statusMessage: 'Fine' }))
      await store.close()
    })

    test('update to the varyKey of another variant replaces that variant', async () => {
      const store = await open()
      await storeBody(store, 'k', sampleMeta({ varyKey: 'a' }), patternBody(10, 1))
      await storeBody(store, 'k', sampleMeta({ varyKey: 'b' }), patternBody(10, 2))
      const b = entryAt(await store.get('k'))
      await store.update('k', b.id, sampleMeta({ varyKey: 'a' }))
      const entries = await store.get('k')
      assert.deepEqual(
        entries.map((entry) => [entry.id, entry.varyKey]),
        [[b.id, 'a']],
      )
      await store.close()
    })

    test('stored metadata is a copy on the way in, and read-only (or a copy) on the way out', async () => {
      const store = await open()
      const meta = sampleMeta()
      const writer = store.put('k', meta)
      assert.ok(writer)
      meta.headers['x-late'] = 'changed'
      await writer.commit()
      meta.statusCode = 500
      const entry = entryAt(await store.get('k'))
      for (const change of [
        () => (entry.headers['x-reader'] = 'changed'),
        () => (entry.varyValues.accept = 'changed'),
      ]) {
        try {
          change()
        } catch (error) {
          assert.ok(error instanceof TypeError, 'a frozen entry refuses changes with a TypeError')
        }
      }
      assert.deepEqual(metaOf(entryAt(await store.get('k'))), sampleMeta())
      await store.close()
    })

    test('delete removes every variant and the writes in progress under the key', async () => {
      const store = await open()
      await storeBody(store, 'k', sampleMeta({ varyKey: 'a' }), patternBody(10, 1))
      await storeBody(store, 'k', sampleMeta({ varyKey: 'b' }), patternBody(CHUNKED_BYTES, 2))
      await storeBody(store, 'kept', sampleMeta(), patternBody(10, 3))
      const small = store.put('k', sampleMeta({ varyKey: 'c' }))
      const large = store.put('k', sampleMeta({ varyKey: 'd' }))
      assert.ok(small && large)
      await small.write(patternBody(10, 4))
      await large.write(patternBody(CHUNKED_BYTES, 5))
      await store.delete('k')
      await store.delete('never-stored')
      await small.commit()
      await large.write(patternBody(10, 6))
      await large.commit()
      assert.deepEqual(await store.get('k'), [])
      assert.equal((await store.get('kept')).length, 1)
      await store.close()
    })

    test('put refuses a body announced bigger than maxEntryBytes', async () => {
      const store = await open({ maxEntryBytes: 2000 })
      assert.equal(store.put('k', sampleMeta(), 2001), undefined)
      assert.ok(store.put('k', sampleMeta(), 2000))
      await store.close()
    })

    test('a body growing past maxEntryBytes is not stored, one at the limit is', async () => {
      const store = await open({ maxEntryBytes: 2000 })
      await storeBody(store, 'old', sampleMeta(), patternBody(100, 1))
      await storeBody(store, 'big', sampleMeta(), patternBody(2001, 2), 300)
      await storeBody(store, 'fits', sampleMeta(), patternBody(2000, 3), 300)
      assert.deepEqual(await store.get('big'), [])
      const fits = entryAt(await store.get('fits'))
      assert.deepEqual(await readBody(fits), patternBody(2000, 3))
      assert.equal((await store.get('old')).length, 1)
      // the writer says so (ForwardHandler reads it: RFC 9111 §4.3.3, the entry it revalidated is put aside)
      const refusing = store.put('refusing', sampleMeta()) as EntryWriter
      await refusing.write(patternBody(2000, 4))
      assert.equal(refusing.refused, false)
      await refusing.write(Buffer.from('x'))
      assert.equal(refusing.refused, true)
      await store.close()
    })

    test(
      'eviction keeps the total under maxBytes and drops the least recently used',
      evictionCase,
      async (t) => {
        const clock = useFakeDate(t)
        const store = await open({ maxBytes: 35_000, maxEntryBytes: 10_000 })
        await storeMinuteApart(store, clock, ['a', 'b', 'c'])
        assert.equal((await store.get('a')).length, 1, 'a is read, so b becomes the least recently used')
        clock.tick(MINUTE_MS)
        await storeBody(store, 'd', sampleMeta(), patternBody(10_000, 4), 4096)
        assert.deepEqual(await presentKeys(store, ['a', 'b', 'c', 'd']), ['a', 'c', 'd'])
        const a = entryAt(await store.get('a'))
        assert.deepEqual(await readBody(a), patternBody(10_000, 'a'.charCodeAt(0)))
        await store.close()
      },
    )

    test(
      'an update whose metadata grows past maxBytes evicts the least recently used other entry',
      evictionCase,
      async (t) => {
        const clock = useFakeDate(t)
        const store = await open({ maxBytes: 33_000, maxEntryBytes: 10_000 })
        await storeMinuteApart(store, clock, ['a', 'b', 'c'])
        const c = entryAt(await store.get('c'))
        clock.tick(MINUTE_MS)
        for (const key of ['a', 'b']) {
          await store.get(key)
          clock.tick(MINUTE_MS)
        }
        const padded = sampleMeta({ headers: { etag: '"v2"', 'x-pad': 'p'.repeat(3000) } })
        await store.update('c', c.id, padded)
        assert.deepEqual(await presentKeys(store, ['a', 'b', 'c']), ['b', 'c'], 'never the entry updated')
        assert.deepEqual(metaOf(entryAt(await store.get('c'))), padded)
        await store.close()
      },
    )

    /** A store of 20 000 bytes (maxEntryBytes too) holding a 100-byte entry under 'small'. */
    const openWithSmall = async () => {
      const store = await open({ maxBytes: 20_000, maxEntryBytes: 20_000 })
      await storeBody(store, 'small', sampleMeta(), patternBody(100, 1))
      return store
    }

    test(
      'an entry bigger than maxBytes on its own is not kept, and nothing is evicted for it',
      evictionCase,
      async () => {
        const store = await openWithSmall()
        // the body fits maxEntryBytes (and maxBytes), not with its metadata
        await storeBody(store, 'huge', sampleMeta(), patternBody(20_000, 2), 4096)
        await storeBody(store, 'inline', sampleMeta(), patternBody(19_990, 3), 20_000)
        assert.deepEqual(await presentKeys(store, ['small', 'huge', 'inline']), ['small'])
        await store.close()
      },
    )

    test(
      'put refuses a declared size that fits maxBytes only without the metadata (so the caller is not told stored)',
      evictionCase,
      async () => {
        const store = await open({ maxBytes: 20_000, maxEntryBytes: 20_000 })
        assert.equal(store.put('declared', sampleMeta(), 19_990), undefined)
        const writer = store.put('declared', sampleMeta(), 10_000)
        assert.ok(writer)
        await writer.abort()
        await store.close()
      },
    )

    test(
      'an update that would make an entry bigger than maxBytes on its own is not made',
      evictionCase,
      async () => {
        const store = await openWithSmall()
        await storeBody(store, 'big', sampleMeta(), patternBody(18_000, 2), 4096)
        const big = entryAt(await store.get('big'))
        await store.update('big', big.id, sampleMeta({ headers: { 'x-pad': 'p'.repeat(3000) } }))
        assert.deepEqual(await presentKeys(store, ['small', 'big']), ['small', 'big'])
        assert.deepEqual(metaOf(entryAt(await store.get('big'))), sampleMeta())
        await store.close()
      },
    )

    test('eviction keeps at most maxEntries entries', evictionCase, async (t) => {
      const clock = useFakeDate(t)
      const store = await open({ maxEntries: 3 })
      for (const key of ['a', 'b', 'c', 'd', 'e']) {
        await storeBody(store, key, sampleMeta(), patternBody(10, 1))
        clock.tick(1000)
      }
      assert.deepEqual(await presentKeys(store, ['a', 'b', 'c', 'd', 'e']), ['c', 'd', 'e'])
      await store.close()
    })

    test('close is idempotent and later calls throw', async () => {
      const store = await open()
      await store.close()
      await store.close()
      await assert.rejects(async () => store.get('k'), /closed/)
      await assert.rejects(async () => store.put('k', sampleMeta()), /closed/)
      await assert.rejects(async () => store.update('k', 1, sampleMeta()), /closed/)
      await assert.rejects(async () => store.delete('k'), /closed/)
    })

    test('matches a simple model under random put, write, commit, abort and delete', async () => {
      await runContractModel(() => open({ maxEntryBytes: MODEL_MAX_ENTRY_BYTES }))
    })
  })
}

/** Keys that have at least one entry, in the given order. */
async function presentKeys(store: CacheStore, keys: string[]): Promise<string[]> {
  const present: string[] = []
  for (const key of keys) if ((await store.get(key)).length > 0) present.push(key)
  return present
}

/** Stores a 10 000-byte body under each key, a minute apart, so each is less recently used than the next. */
async function storeMinuteApart(store: CacheStore, clock: ReturnType<typeof useFakeDate>, keys: string[]) {
  for (const key of keys) {
    await storeBody(store, key, sampleMeta(), patternBody(10_000, key.charCodeAt(0)), 4096)
    clock.tick(MINUTE_MS)
  }
}

/** Mocks Date for one test (stores throttle recency updates by wall-clock time). */
function useFakeDate(t: TestContext) {
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
  return t.mock.timers
}
