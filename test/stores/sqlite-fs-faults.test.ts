import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import type { OpenReport } from './child-open.js'
import { bodyFileNames, entryAt, patternBody, readBody, sampleMeta, storeBody } from './helpers.js'
import { mountTmpfs } from './sqlite-mounts.js'

const KIB = 1024
const NOBODY = 65534
const dir = mkdtempSync(join(tmpdir(), 'undici-cache-fs-faults-'))
chmodSync(dir, 0o755)
after(() => rmSync(dir, { recursive: true, force: true }))

/** Runs child-open.ts on `paths`; as root it runs as nobody, since root ignores file modes. */
async function openInChild(
  paths: string[],
): Promise<{ uid: number; reports: OpenReport[]; warnings: string[] }> {
  const script = fileURLToPath(new URL('./child-open.ts', import.meta.url))
  const asNobody = process.getuid?.() === 0 ? { uid: NOBODY, gid: NOBODY } : {}
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...paths], {
    stdio: ['ignore', 'pipe', 'inherit'],
    ...asNobody,
  })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    output += text
  })
  const [exitCode] = await once(child, 'close') // after its stdout was read to the end
  assert.equal(exitCode, 0)
  return JSON.parse(output)
}

/** What a store that could not open reports for each call. */
function failedReport(path: string, reason: string): OpenReport {
  const failure = `SqliteStore cannot use ${path}: ${reason}`
  return { path, failure, get: failure, put: failure }
}

test('a read-only file, an unreadable file, a read-only directory, an unwritable parent: calls fail, one warning each', {
  skip: process.getuid === undefined ? 'needs POSIX users and file modes' : false,
}, async () => {
  const writable = join(dir, 'writable')
  const readOnly = join(dir, 'read-only')
  mkdirSync(writable)
  mkdirSync(readOnly)
  const readOnlyFile = join(writable, 'read-only.db')
  const store = new SqliteStore({ path: readOnlyFile })
  await storeBody(store, 'k', sampleMeta(), patternBody(100, 1))
  store.close()
  chmodSync(readOnlyFile, 0o444)
  const unreadableFile = join(writable, 'unreadable.db')
  writeFileSync(unreadableFile, '')
  chmodSync(unreadableFile, 0o000)
  chmodSync(writable, 0o777)
  chmodSync(readOnly, 0o555)
  const newFile = join(readOnly, 'new.db')
  const newDir = join(readOnly, 'sub', 'new.db')

  const { uid, reports, warnings } = await openInChild([readOnlyFile, unreadableFile, newFile, newDir])
  assert.notEqual(uid, 0)
  assert.deepEqual(reports, [
    failedReport(readOnlyFile, 'attempt to write a readonly database (SQLITE_READONLY)'),
    failedReport(unreadableFile, `EACCES: permission denied, open '${unreadableFile}'`),
    failedReport(newFile, 'unable to open database file (SQLITE_CANTOPEN)'),
    failedReport(newDir, `EACCES: permission denied, mkdir '${join(readOnly, 'sub')}'`),
  ])
  assert.deepEqual(
    warnings,
    reports.map(
      (report) =>
        `UNDICI_CACHE_STORE_ERROR: undici-cache: store open failed, passing requests through: ${report.failure}`,
    ),
  )
})

/** How a full disk shows, by where bodies go: SQLite's error for chunk rows, the system's for files. */
const FULL_DISK = {
  rows: { code: 'SQLITE_FULL', message: 'database or disk is full' },
  files: { code: 'ENOSPC', message: 'ENOSPC: no space left on device, write' },
}

for (const storage of ['files', 'rows'] as const)
  test(`a full disk (bodies in ${storage}) fails the write that hits it, drops that entry, and the store reads on`, async (t) => {
    const tmpfs = mountTmpfs(2 * 1024 * KIB)
    if ('skip' in tmpfs) return t.skip(tmpfs.skip)
    try {
      const filler = join(tmpfs.dir, 'filler')
      writeFileSync(filler, Buffer.alloc(256 * KIB))
      const path = join(tmpfs.dir, 'cache.db')
      const bodyFiles = storage === 'files'
      const store = new SqliteStore({ path, chunkBytes: 16 * KIB, sweepIntervalMs: 0, bodyFiles })
      const meta = sampleMeta({ deleteAtMs: 0 })
      const stored: number[] = []
      let failure: unknown
      for (let seed = 0; failure === undefined; seed++) {
        await storeBody(store, `k${seed}`, meta, patternBody(100_000, seed), 8 * KIB).then(
          () => stored.push(seed),
          (error: unknown) => {
            failure = error
          },
        )
      }
      assert.equal((failure as { code?: string }).code, FULL_DISK[storage].code)
      assert.equal((failure as Error).message, FULL_DISK[storage].message)
      const failedKey = `k${stored.length}`
      assert.deepEqual(store.get(failedKey), [])
      const metaBytes = Buffer.byteLength(JSON.stringify(meta))
      assert.deepEqual(store.stats(), {
        totalBytes: stored.length * (100_000 + metaBytes),
        entryCount: stored.length,
      })
      for (const seed of stored) {
        assert.deepEqual(await readBody(entryAt(store.get(`k${seed}`))), patternBody(100_000, seed))
      }
      const unfinished = 'SELECT COUNT(*) AS n FROM entries WHERE complete = 0'
      const raw = new Database(path, { readonly: true })
      const left = (raw.prepare(unfinished).get() as { n: number }).n
      t.diagnostic(
        `${stored.length} entries of 100 000 bytes fit; the failed write left ${left} unfinished row(s)`,
      )

      const second = new SqliteStore({ path, sweepIntervalMs: 0 })
      assert.equal(second.failure, undefined, 'opening on a full disk skips the cleanup and still reads')
      assert.deepEqual(await readBody(entryAt(second.get('k0'))), patternBody(100_000, 0))
      second.close()

      rmSync(filler)
      assert.equal(store.sweep(), 0, 'nothing expired; an unfinished row left by the failed write is retried')
      assert.deepEqual(raw.prepare(unfinished).get(), { n: 0 })
      assert.deepEqual(
        raw
          .prepare(
            'SELECT COUNT(*) AS n FROM chunks WHERE entry_id NOT IN (SELECT id FROM entries WHERE complete = 1)',
          )
          .get(),
        { n: 0 },
      )
      const bodyFileIds = raw.prepare('SELECT id FROM entries WHERE body_file = 1 ORDER BY id').pluck().all()
      assert.deepEqual(bodyFileNames(path), bodyFileIds.map(String), 'a file for each stored body, no other')
      assert.equal(bodyFileIds.length, bodyFiles ? stored.length : 0)
      raw.close()
      await storeBody(store, failedKey, meta, patternBody(50_000, 99), 8 * KIB)
      const again = await readBody(entryAt(store.get(failedKey)))
      assert.equal(
        createHash('sha256').update(again).digest('hex'),
        createHash('sha256').update(patternBody(50_000, 99)).digest('hex'),
      )
      store.close()
    } finally {
      tmpfs.unmount()
    }
  })

test('a read-only file system: a store there fails, every call throws, the file stays as it was', async (t) => {
  const tmpfs = mountTmpfs(1024 * KIB)
  if ('skip' in tmpfs) return t.skip(tmpfs.skip)
  try {
    const path = join(tmpfs.dir, 'cache.db')
    const writer = new SqliteStore({ path })
    await storeBody(writer, 'k', sampleMeta(), patternBody(100, 1))
    writer.close()
    tmpfs.remountReadOnly()
    for (const target of [path, join(tmpfs.dir, 'new.db')]) {
      const store = new SqliteStore({ path: target })
      const failure = `SqliteStore cannot use ${target}: unable to open database file (SQLITE_CANTOPEN)`
      assert.equal(store.failure?.message, failure)
      assert.throws(() => store.get('k'), { message: failure })
      assert.throws(() => store.put('k', sampleMeta()), { message: failure })
      store.close()
    }
  } finally {
    tmpfs.unmount()
  }
})
