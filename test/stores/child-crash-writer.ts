/**
 * Run as a separate process and killed by the parent at a random moment: writes entries into a
 * SqliteStore file without end and prints one line per commit. Mode 'body': 1 MiB bodies written
 * 16 KiB at a time (to a body file, or to chunk rows with `rows`). Mode 'evict': bursts of small inline entries, then a 200 KiB one whose commit evicts
 * most of them (maxBytes 512 KiB).
 */
import { createHash } from 'node:crypto'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { patternBody, sampleMeta } from './helpers.js'

const KIB = 1024
const [path, mode, storage] = process.argv.slice(2)
if (
  path === undefined ||
  (mode !== 'body' && mode !== 'evict') ||
  (storage !== 'rows' && storage !== 'files')
) {
  throw new Error('usage: child-crash-writer.ts <path> body|evict rows|files')
}
const bodyFiles = storage === 'files'
const store =
  mode === 'body'
    ? new SqliteStore({ path, chunkBytes: 16 * KIB, maxBytes: 4096 * KIB, sweepIntervalMs: 0, bodyFiles })
    : new SqliteStore({ path, chunkBytes: 4 * KIB, maxBytes: 512 * KIB, sweepIntervalMs: 0, bodyFiles })
if (store.failure) throw store.failure

/** Large bodies come from a few made before 'ready', so that most of a round is spent writing. */
const BODY_VARIANTS = 4
const largeBodies = Array.from({ length: BODY_VARIANTS }, (_, variant) =>
  describedBody(largeSize(variant), variant),
)
const startedMs = performance.now()
let commitMs = 0
process.stdout.write('ready\n')

function largeSize(variant: number): number {
  return 1024 * KIB + ((variant * 7919) % (64 * KIB))
}

function describedBody(sizeBytes: number, seed: number) {
  const body = patternBody(sizeBytes, seed)
  return { body, sha256: createHash('sha256').update(body).digest('hex') }
}

/**
 * Prints a line and resolves once it is in the pipe. When the parent is busy the pipe fills and
 * process.stdout.write only queues the line in this process, where a SIGKILL loses it: a writer that
 * went on committing would run rounds ahead of what the parent saw, and eviction would legitimately
 * remove the entry the parent believes was last.
 */
function report(line: string): Promise<void> {
  return new Promise((resolve) => process.stdout.write(line, () => resolve()))
}

/** Writes one entry that describes its own body (size and sha256 in its headers), then reports it. */
async function writeEntry(
  key: string,
  described: { body: Buffer; sha256: string },
  writeBytes: number,
): Promise<void> {
  const { body, sha256 } = described
  const sizeBytes = body.length
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
  await report(`committed ${key} ${sha256} ${commitMs.toFixed(2)} ${elapsedMs.toFixed(2)}\n`)
}

const run = `${process.pid}`
for (let round = 0; ; round++) {
  if (mode === 'body') {
    await writeEntry(
      `body-${run}-${round}`,
      largeBodies[round % BODY_VARIANTS] as { body: Buffer; sha256: string },
      16 * KIB,
    )
    continue
  }
  for (let i = 0; i < 20; i++)
    await writeEntry(`small-${run}-${round}-${i}`, describedBody(KIB, round * 20 + i), KIB)
  await writeEntry(`large-${run}-${round}`, describedBody(200 * KIB, round), 8 * KIB)
}
