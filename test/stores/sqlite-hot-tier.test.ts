import assert from 'node:assert/strict'
import { closeSync, mkdtempSync, openSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import v8 from 'node:v8'
import vm from 'node:vm'
import { FILE_READ_BYTES } from '../../lib/stores/sqlite-body-files.js'
import { OTHER_WRITER_CHECK_MS } from '../../lib/stores/sqlite-data-version.js'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import {
  bodyFileNames,
  bodyFileOf,
  entryAt,
  linuxOnly,
  openBody,
  openBodyFds,
  patternBody,
  readBody,
  readChunks,
  sampleMeta,
  storeBody,
  writeFromChild,
} from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'undici-cache-hot-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const newPath = () => join(dir, `hot-${files++}.db`)

/**
 * A store whose entry 'k' has a body file of `sizeBytes` (a pattern of `seed`), looked up twice: the
 * tier holds the entry, its body not in memory yet.
 */
async function coldFileEntry(sizeBytes: number, seed: number) {
  const path = newPath()
  const store = new SqliteStore({ path, chunkBytes: 1024 })
  const body = patternBody(sizeBytes, seed)
  await storeBody(store, 'k', sampleMeta(), body)
  store.get('k') // a key's first read from the file is noted, not kept
  return { path, store, body, cold: entryAt(store.get('k')) }
}

test('repeated hits are served from memory: the same frozen entry, no copy', async () => {
  const store = new SqliteStore({ path: newPath() })
  await storeBody(store, 'k', sampleMeta(), patternBody(100, 1))
  store.get('k') // a key's first read from the file is noted, not kept
  const first = entryAt(store.get('k'))
  const second = entryAt(store.get('k'))
  assert.equal(second, first)
  assert.ok(Object.isFrozen(first.headers))
  assert.throws(() => {
    first.headers['x-changed'] = 'yes'
  }, TypeError)
  assert.deepEqual(await readBody(second), patternBody(100, 1))
  store.close()
})

test("another process's commit empties it (SQLite data_version)", async () => {
  const path = newPath()
  const reader = new SqliteStore({ path })
  const writer = new SqliteStore({ path })
  await storeBody(writer, 'k', sampleMeta(), patternBody(100, 1))
  assert.deepEqual(await readBody(entryAt(reader.get('k'))), patternBody(100, 1))
  await storeBody(writer, 'k', sampleMeta(), patternBody(100, 2))
  assert.deepEqual(await readBody(entryAt(reader.get('k'))), patternBody(100, 2))
  writer.delete('k')
  assert.deepEqual(reader.get('k'), [])
  reader.close()
  writer.close()
})

test("another process's commit is seen by the next hit OTHER_WRITER_CHECK_MS later", async () => {
  const path = newPath()
  const reader = new SqliteStore({ path })
  await storeBody(reader, 'k', sampleMeta({ varyKey: 'child' }), patternBody(100, 1))
  reader.get('k')
  const before = entryAt(reader.get('k'))
  assert.equal(entryAt(reader.get('k')), before, 'served from memory')
  await writeFromChild(path, 'k', { sizeBytes: 100, seed: 2, writeBytes: 100, chunkBytes: 1024 })
  await sleep(OTHER_WRITER_CHECK_MS)
  assert.deepEqual(await readBody(entryAt(reader.get('k'))), patternBody(100, 2))
  reader.close()
})

test("this process's own writes forget the key they touch", async () => {
  const store = new SqliteStore({ path: newPath() })
  await storeBody(store, 'k', sampleMeta(), patternBody(100, 1))
  const before = entryAt(store.get('k'))
  store.update('k', before.id, sampleMeta({ statusMessage: 'Updated' }))
  assert.equal(entryAt(store.get('k')).statusMessage, 'Updated')
  await storeBody(store, 'k', sampleMeta(), patternBody(100, 3))
  assert.deepEqual(await readBody(entryAt(store.get('k'))), patternBody(100, 3))
  store.delete('k')
  assert.deepEqual(store.get('k'), [])
  store.close()
})

test('a body in a file is kept in memory once a hit read it whole, and not read from the file again', async () => {
  const { path, store, body, cold } = await coldFileEntry(3 * 1024 * 1024 + 5, 1)
  assert.equal(entryAt(store.get('k')), cold, 'kept, body not in memory yet')
  assert.deepEqual(await readBody(cold), body)
  const warm = entryAt(store.get('k'))
  assert.notEqual(warm, cold)
  assert.equal(entryAt(store.get('k')), warm)
  writeFileSync(bodyFileOf(path, warm.id), patternBody(body.length, 2))
  assert.deepEqual(await readBody(warm), body, 'served from memory')
  assert.equal((await readChunks(warm)).length, 1, 'as one buffer')
  assert.ok(warm.body?.equals(body))
  store.close()
})

/** Writes `bytes` over the start of the file at `path`, in place (the same file, still open elsewhere). */
function overwrite(path: string, bytes: Buffer): void {
  const fd = openSync(path, 'r+')
  try {
    writeSync(fd, bytes, 0, bytes.length, 0)
  } finally {
    closeSync(fd)
  }
}

/** The pieces `reader` yields until it ends or fails, and how it failed. */
async function drain(reader: Iterator<Buffer> | AsyncIterator<Buffer>) {
  const pieces: Buffer[] = []
  try {
    for (let step = await reader.next(); !step.done; step = await reader.next()) pieces.push(step.value)
    return { bytes: Buffer.concat(pieces), failure: undefined }
  } catch (error) {
    return { bytes: Buffer.concat(pieces), failure: error as Error }
  }
}

test('hits on a body file not in memory yet follow one read of it, not the file as it is later', async () => {
  const { path, store, body, cold } = await coldFileEntry(3 * 1024 * 1024 + 5, 1)
  const first = openBody(cold)
  const others = [openBody(cold), openBody(entryAt(store.get('k')))]
  assert.ok((await drain(first)).bytes.equals(body))
  // the read has ended: bytes changed in the file now are not what the hits that followed it get
  overwrite(bodyFileOf(path, cold.id), patternBody(body.length, 2))
  for (const other of others) assert.ok((await drain(other)).bytes.equals(body))
  const warm = entryAt(store.get('k'))
  assert.notEqual(warm, cold)
  assert.ok(warm.body?.equals(body), 'kept')
  assert.ok((await readBody(cold)).equals(body), 'a hit that looked it up before reads it from memory too')
  store.close()
})

test('hits whose load stops (the entry deleted, its file removed) read the rest from their own readers', async () => {
  const { path, store, body, cold } = await coldFileEntry(3 * FILE_READ_BYTES + 5, 4)
  const [taking, waiting] = [openBody(cold), openBody(cold)]
  const firstStep = await taking.next()
  assert.equal(firstStep.done, false)
  store.delete('k')
  assert.deepEqual(bodyFileNames(path), [], 'the file is removed')
  const rest = await drain(taking)
  assert.ok(Buffer.concat([firstStep.value as Buffer, rest.bytes]).equals(body))
  assert.ok((await drain(waiting)).bytes.equals(body))
  assert.deepEqual(store.get('k'), [])
  store.close()
})

test(
  'a body file loaded for hits that all left unread is read through and kept; their readers are closed',
  linuxOnly,
  async () => {
    const { path, store, body, cold } = await coldFileEntry(3 * 1024 * 1024, 2)
    const dropUnread = () => {
      cold.readBody()
    }
    dropUnread()
    await openBody(cold).return?.()
    for (let tries = 0; tries < 20 && openBodyFds(path).length > 0; tries++) await collected()
    assert.deepEqual(openBodyFds(path), [])
    assert.ok(entryAt(store.get('k')).body?.equals(body))
    store.close()
  },
)

/** Garbage collected, a few times over a few turns (the flag is set for this file by an earlier test too). */
async function collected(): Promise<void> {
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  for (let i = 0; i < 5; i++) {
    await sleep(20)
    gc()
  }
}

for (const loadsEnd of [false, true]) {
  test(`slow hits on more cold bodies than the tier holds keep what their own reads would (loads ${loadsEnd ? 'ended' : 'under way'} as the tier lets go)`, async () => {
    const hotBytes = 32 * 1024 * 1024
    const sizeBytes = hotBytes / 4 - 4096
    const keys = 12
    const store = new SqliteStore({
      path: newPath(),
      hotBytes,
      chunkBytes: 1024,
      maxEntryBytes: 2 * sizeBytes,
    })
    for (let i = 0; i < keys; i++)
      await storeBody(store, `k${i}`, sampleMeta(), patternBody(sizeBytes, i), 64 * 1024)
    await collected()
    const before = process.memoryUsage().arrayBuffers
    // each took one piece and waits: the tier let go of the first keys as it took the later ones
    const readers: (Iterator<Buffer> | AsyncIterator<Buffer>)[] = []
    for (let i = 0; i < keys; i++) {
      store.get(`k${i}`)
      const reader = openBody(entryAt(store.get(`k${i}`)))
      assert.equal((await reader.next()).done, false)
      readers.push(reader)
      for (let tries = 0; loadsEnd && tries < 200 && !entryAt(store.get(`k${i}`)).body; tries++)
        await sleep(10)
    }
    await collected()
    const heldBytes = process.memoryUsage().arrayBuffers - before
    for (const reader of readers) await reader.return?.()
    store.close()
    // the tier's hotBytes, and at most two pieces for each read of a file
    const boundBytes = hotBytes + keys * 2 * FILE_READ_BYTES
    assert.ok(heldBytes <= boundBytes, `${heldBytes} bytes held, more than ${boundBytes}`)
  })
}

test('a hit that looked a body file up before its load ended reads the body loaded, not the file', async () => {
  const { path, store, body, cold } = await coldFileEntry(3 * FILE_READ_BYTES, 13)
  assert.ok((await readBody(cold)).equals(body))
  rmSync(bodyFileOf(path, cold.id))
  assert.ok((await readBody(cold)).equals(body))
  store.close()
})

test(
  'a hit on an entry the tier let go of reads the file itself: nothing loaded for it',
  linuxOnly,
  async () => {
    const { path, store, cold } = await coldFileEntry(6 * 1024 * 1024, 5)
    const peer = new SqliteStore({ path })
    await storeBody(peer, 'other', sampleMeta(), patternBody(10, 9))
    peer.close()
    assert.notEqual(entryAt(store.get('k')), cold, 'another store wrote: the tier let go of it')
    await collected()
    const before = process.memoryUsage().arrayBuffers
    const reader = openBody(cold)
    const allocatedBytes = process.memoryUsage().arrayBuffers - before
    await reader.return?.()
    assert.deepEqual(openBodyFds(path), [], 'its caller left: the file is closed, not read on')
    assert.ok(allocatedBytes < FILE_READ_BYTES, `${allocatedBytes} bytes allocated`)
    store.close()
  },
)

test('a body file that fails to load fails each hit as its own read would, and the next hit loads it again', async () => {
  const { path, store, body, cold } = await coldFileEntry(FILE_READ_BYTES * 3, 3)
  const readers = [openBody(cold), openBody(cold)]
  // its first read (FILE_READ_BYTES) is whole, the second short
  truncateSync(bodyFileOf(path, cold.id), FILE_READ_BYTES + 10)
  for (const reader of readers) {
    const { bytes, failure } = await drain(reader)
    assert.match(String(failure), /ended early/)
    assert.ok(bytes.equals(body.subarray(0, FILE_READ_BYTES)))
  }
  assert.equal(entryAt(store.get('k')), cold, 'not kept')
  writeFileSync(bodyFileOf(path, cold.id), body)
  assert.ok((await readBody(cold)).equals(body))
  assert.ok(entryAt(store.get('k')).body?.equals(body), 'kept from the second load')
  store.close()
})

test('an update keeps a body in memory, with the metadata as the file now holds it', async () => {
  const path = newPath()
  const store = new SqliteStore({ path, chunkBytes: 1024 })
  const body = patternBody(3 * 1024 * 1024 + 5, 1)
  await storeBody(store, 'k', sampleMeta(), body)
  store.get('k')
  assert.deepEqual(await readBody(entryAt(store.get('k'))), body)
  const warm = entryAt(store.get('k'))
  const meta = sampleMeta({ statusMessage: 'Updated', headers: { etag: '"u"' }, authorized: undefined })
  store.update('k', warm.id, meta)
  const updated = entryAt(store.get('k'))
  assert.notEqual(updated, warm)
  assert.ok(Object.isFrozen(updated.headers))
  writeFileSync(bodyFileOf(path, warm.id), patternBody(body.length, 2))
  assert.deepEqual(await readBody(updated), body, 'served from memory')
  const fromFile = new SqliteStore({ path, hotBytes: 0 })
  const { body: _inMemory, readBody: _fromMemory, ...kept } = updated
  const { readBody: _fromFile, readRange: _rangeFromFile, ...read } = entryAt(fromFile.get('k'))
  assert.deepEqual(kept, read)
  fromFile.close()
  store.close()
})

test('an update of an entry whose body is not in memory yet keeps it with the new metadata; its load goes on', async () => {
  const { store, body, cold } = await coldFileEntry(3 * 1024 * 1024, 1)
  const reading = readBody(cold)
  store.update('k', cold.id, sampleMeta({ statusMessage: 'Updated' }))
  const updated = entryAt(store.get('k'))
  assert.notEqual(updated, cold)
  assert.deepEqual([updated.statusMessage, updated.body], ['Updated', undefined])
  assert.ok((await reading).equals(body))
  const warm = entryAt(store.get('k'))
  assert.equal(warm.statusMessage, 'Updated')
  assert.ok(warm.body?.equals(body), 'kept by the load started before the update')
  store.close()
})

test('a body read in part (a range, an aborted response) is not kept; a read whole later is', async () => {
  const store = new SqliteStore({ path: newPath(), chunkBytes: 1024, bodyFiles: false })
  const body = patternBody(5000, 3)
  await storeBody(store, 'k', sampleMeta(), body)
  store.get('k')
  const cold = entryAt(store.get('k'))
  const reader = openBody(cold)
  assert.equal((await reader.next()).done, false)
  await reader.return?.()
  assert.equal(entryAt(store.get('k')), cold, 'still read from SQLite')
  assert.deepEqual(await readBody(cold), body)
  const warm = entryAt(store.get('k'))
  assert.notEqual(warm, cold)
  assert.deepEqual(await readBody(warm), body)
  store.close()
})

test('a reader dropped or closed before its first read does not stop a later hit from keeping', async () => {
  const store = new SqliteStore({ path: newPath(), chunkBytes: 1024 })
  await storeBody(store, 'k', sampleMeta(), patternBody(5000, 5))
  const cold = entryAt(store.get('k'))
  cold.readBody()
  await openBody(cold).return?.()
  assert.deepEqual(await readBody(cold), patternBody(5000, 5))
  assert.notEqual(entryAt(store.get('k')), cold, 'kept')
  store.close()
})

test('an update during a keeping read of chunk rows keeps the entry with the new metadata, and the body read', async () => {
  const store = new SqliteStore({ path: newPath(), chunkBytes: 1024, bodyFiles: false })
  await storeBody(store, 'k', sampleMeta(), patternBody(5000, 6))
  store.get('k') // a key's first read from the file is noted, not kept
  const cold = entryAt(store.get('k'))
  const slow = openBody(cold)
  await slow.next()
  store.update('k', cold.id, sampleMeta({ statusMessage: 'Updated' }))
  const updated = entryAt(store.get('k'))
  assert.deepEqual([updated.statusMessage, updated.body], ['Updated', undefined])
  while (!(await slow.next()).done) {}
  const warm = entryAt(store.get('k'))
  assert.ok(warm.body?.equals(patternBody(5000, 6)), 'kept by the read under way')
  assert.equal(warm.statusMessage, 'Updated')
  store.close()
})

test('a write that replaces the entry during its first whole read: that read gets the old body, later hits the new', async () => {
  const { store, body, cold } = await coldFileEntry(3 * 1024 * 1024, 4)
  const reading = readBody(cold)
  const replacement = patternBody(3 * 1024 * 1024, 5)
  await storeBody(store, 'k', sampleMeta({ statusMessage: 'Replaced' }), replacement)
  assert.ok((await reading).equals(body))
  for (let i = 0; i < 3; i++) {
    const entry = entryAt(store.get('k'))
    assert.equal(entry.statusMessage, 'Replaced')
    assert.ok((await readBody(entry)).equals(replacement))
  }
  store.close()
})

test('a body replaced during the first whole read throws as without the tier, and is not kept', async () => {
  const store = new SqliteStore({ path: newPath(), chunkBytes: 1024, bodyFiles: false })
  await storeBody(store, 'k', sampleMeta(), patternBody(3000, 1))
  const old = entryAt(store.get('k'))
  const reader = openBody(old)
  assert.deepEqual((await reader.next()).value, patternBody(3000, 1).subarray(0, 1024))
  await storeBody(store, 'k', sampleMeta(), patternBody(3000, 2))
  await assert.rejects(async () => reader.next(), {
    message: `undici-cache: body of entry ${old.id} is gone (replaced or evicted while read)`,
  })
  const fresh = entryAt(store.get('k'))
  assert.deepEqual(await readBody(fresh), patternBody(3000, 2))
  assert.deepEqual(await readBody(entryAt(store.get('k'))), patternBody(3000, 2))
  store.close()
})

test('a key is kept from its second read: reads spread over more keys than the tier holds keep none', async () => {
  const store = new SqliteStore({ path: newPath(), hotBytes: 64 * 1024 })
  await storeBody(store, 'k', sampleMeta(), patternBody(100, 1))
  assert.notEqual(entryAt(store.get('k')), entryAt(store.get('k')), 'the first read noted, not kept')
  assert.equal(entryAt(store.get('k')), entryAt(store.get('k')), 'kept from the second')
  // 64 KiB holds ~64 keys: 200 keys read in turn are forgotten before they come back, and none is kept
  for (let i = 0; i < 200; i++) await storeBody(store, `spread-${i}`, sampleMeta(), patternBody(10, i))
  const rounds = [0, 1].map(() => Array.from({ length: 200 }, (_, i) => store.get(`spread-${i}`)))
  const lastOfSecondRound = entryAt(rounds[1]?.[199] ?? [])
  assert.notEqual(entryAt(store.get('spread-199')), lastOfSecondRound, 'its second round read the file too')
  store.close()
})

test('each key may take a quarter of hotBytes; hotBytes: 0 turns it off', async () => {
  const off = new SqliteStore({ path: newPath(), hotBytes: 0 })
  await storeBody(off, 'k', sampleMeta(), patternBody(100, 1))
  assert.notEqual(entryAt(off.get('k')), entryAt(off.get('k')))
  off.close()
  const tiny = new SqliteStore({ path: newPath(), hotBytes: 16 * 1024, chunkBytes: 1024 })
  await storeBody(tiny, 'a', sampleMeta(), patternBody(100, 1))
  await storeBody(tiny, 'b', sampleMeta(), patternBody(2900, 2))
  await storeBody(tiny, 'c', sampleMeta(), patternBody(3100, 3))
  for (const key of ['a', 'b', 'c']) tiny.get(key)
  assert.equal(entryAt(tiny.get('a')), entryAt(tiny.get('a')))
  assert.equal(entryAt(tiny.get('b')), entryAt(tiny.get('b')))
  assert.notEqual(entryAt(tiny.get('c')), entryAt(tiny.get('c')))
  tiny.close()
  assert.throws(() => new SqliteStore({ path: newPath(), hotBytes: -1 }), {
    name: 'RangeError',
    message: /hotBytes/,
  })
})
