/**
 * Run as a separate process and killed by the parent at a random moment: writes entries into a
 * SqliteStore file without end and prints one line per commit. Mode 'body': 1 MiB bodies in 16 KiB
 * chunk rows. Mode 'evict': bursts of small inline entries, then a 200 KiB one whose commit evicts
 * most of them (maxBytes 512 KiB).
 */
import { createHash } from 'node:crypto'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { patternBody, sampleMeta } from './helpers.js'

const KIB = 1024
const [path, mode] = process.argv.slice(2)
if (path === undefined || (mode !== 'body' && mode !== 'evict')) {
  throw new Error('usage: child-crash-writer.ts <path> body|evict')
}
const store =
  mode === 'body'
    ? new SqliteStore({ path, chunkBytes: 16 * KIB, maxBytes: 4096 * KIB, sweepIntervalMs: 0 })
    : new SqliteStore({ path, chunkBytes: 4 * KIB, maxBytes: 512 * KIB, sweepIntervalMs: 0 })
if (store.failure) throw store.failure
const startedMs = performance.now()
let commitMs = 0
process.stdout.write('ready\n')

/** Writes one entry that describes its own body (size and sha256 in its headers), then reports it. */
function writeEntry(key: string, sizeBytes: number, seed: number, writeBytes: number): void {
  const body = patternBody(sizeBytes, seed)
  const sha256 = createHash('sha256').update(body).digest('hex')
  const meta = sampleMeta({ headers: { 'x-sha256': sha256, 'x-size': String(sizeBytes) }, deleteAtMs: 0 })
  const writer = store.put(key, meta)
  if (writer === undefined) throw new Error(`put refused ${key}`)
  for (let offset = 0; offset < sizeBytes; offset += writeBytes) {
    writer.write(body.subarray(offset, offset + writeBytes))
  }
  const commitStartedMs = performance.now()
  writer.commit()
  commitMs += performance.now() - commitStartedMs
  const elapsedMs = performance.now() - startedMs
  process.stdout.write(`committed ${key} ${sha256} ${commitMs.toFixed(2)} ${elapsedMs.toFixed(2)}\n`)
}

const run = `${process.pid}`
for (let round = 0; ; round++) {
  if (mode === 'body') {
    writeEntry(`body-${run}-${round}`, 1024 * KIB + ((round * 7919) % (64 * KIB)), round, 16 * KIB)
    continue
  }
  for (let i = 0; i < 20; i++) writeEntry(`small-${run}-${round}-${i}`, KIB, round * 20 + i, KIB)
  writeEntry(`large-${run}-${round}`, 200 * KIB, round, 8 * KIB)
}
