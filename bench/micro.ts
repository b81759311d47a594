/**
 * Micro-benchmark of the pure policy functions a request goes through (parse + decide), in ns/op,
 * with tinybench. `npm run bench` runs it at the end; alone:
 *
 *   node --import tsx bench/micro.ts [--quick]
 */
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Bench } from 'tinybench'
import {
  canStore,
  decideReuse,
  formatCacheStatus,
  parseCacheControl,
  type RequestInfo,
  type ResponseInfo,
  type StoredResponse,
  selectVariant,
} from '../lib/policy/index.js'

const NS_PER_MS = 1e6
const STORED_AGO_MS = 10_000
const NOW_MS = Date.now()

/** One function's cost. */
export interface MicroRow {
  name: string
  nsPerOp: number
  p99Ns: number
  /** Relative margin of error of the mean, in %. */
  rmePercent: number
  samples: number
}

const CACHE_CONTROL = 'public, max-age=3600, stale-while-revalidate=60, stale-if-error=600'

const REQUEST: RequestInfo = {
  method: 'GET',
  headers: { accept: 'application/json', 'accept-encoding': 'gzip, br', 'user-agent': 'undici' },
}

const RESPONSE: ResponseInfo = {
  statusCode: 200,
  headers: {
    'cache-control': CACHE_CONTROL,
    'content-length': '1024',
    'content-type': 'application/json',
    date: new Date(NOW_MS - STORED_AGO_MS).toUTCString(),
    etag: '"v1"',
    'last-modified': new Date(NOW_MS - 3_600_000).toUTCString(),
    vary: 'accept-encoding',
  },
}

function stored(acceptEncoding: string, ageMs: number): StoredResponse {
  return {
    ...RESPONSE,
    statusMessage: 'OK',
    requestTimeMs: NOW_MS - ageMs,
    responseTimeMs: NOW_MS - ageMs,
    varyValues: { 'accept-encoding': acceptEncoding },
  }
}

const STORED = stored('br, gzip', STORED_AGO_MS)
const VARIANTS = [stored('identity', 30_000), stored('gzip', 20_000), STORED]

/** Keeps results alive so that no call is optimised away. */
const sink: { value: unknown } = { value: undefined }

const TASKS: ReadonlyArray<readonly [string, () => unknown]> = [
  ['parseCacheControl (4 directives)', () => parseCacheControl(CACHE_CONTROL)],
  ['canStore (200, shared)', () => canStore(REQUEST, RESPONSE, true)],
  ['decideReuse (fresh)', () => decideReuse(REQUEST, STORED, NOW_MS, true)],
  ['selectVariant (3 variants)', () => selectVariant(VARIANTS, REQUEST.headers)],
  ['formatCacheStatus (hit, ttl)', () => formatCacheStatus('undici-cache', { hit: true, ttlSeconds: 3590 })],
  [
    'a hit: select + decide + status',
    () => {
      const variant = selectVariant(VARIANTS, REQUEST.headers) ?? STORED
      const decision = decideReuse(REQUEST, variant, NOW_MS, true)
      return formatCacheStatus('undici-cache', { hit: true, ttlSeconds: decision.ttlSeconds })
    },
  ],
  [
    'a miss: parse + canStore + status',
    () => {
      sink.value = parseCacheControl(RESPONSE.headers['cache-control'])
      sink.value = canStore(REQUEST, RESPONSE, true)
      return formatCacheStatus('undici-cache', { fwd: 'uri-miss', stored: true })
    },
  ],
]

/** Runs every task for `timeMs` (after a warm-up) and returns its cost. */
export async function runMicro(options: { quick: boolean }): Promise<MicroRow[]> {
  const bench = new Bench({ time: options.quick ? 100 : 500, warmupTime: options.quick ? 50 : 200 })
  for (const [name, task] of TASKS) {
    bench.add(name, () => {
      sink.value = task()
    })
  }
  await bench.run()
  return bench.tasks.map((task) => {
    const latency = task.result?.latency
    return {
      name: task.name,
      nsPerOp: Math.round((latency?.mean ?? Number.NaN) * NS_PER_MS),
      p99Ns: Math.round((latency?.p99 ?? Number.NaN) * NS_PER_MS),
      rmePercent: Math.round((latency?.rme ?? Number.NaN) * 10) / 10,
      samples: latency?.samples.length ?? 0,
    }
  })
}

/** The rows as a markdown table. */
export function microTable(rows: readonly MicroRow[]): string {
  const lines = rows.map(
    (row) => `| ${row.name} | ${row.nsPerOp} | ${row.p99Ns} | ±${row.rmePercent}% | ${row.samples} |`,
  )
  return ['| policy function | ns/op | p99 ns | ± | samples |', '|---|--:|--:|--:|--:|', ...lines].join('\n')
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } })
  process.stdout.write(`${microTable(await runMicro({ quick: values.quick }))}\n`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()
