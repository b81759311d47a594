/** The benchmark's scenarios and clients, shared by the runner and the client processes. */

/**
 * What a scenario exercises: `hit`, `miss` (store on unique URLs) and `revalidate` (304s) send
 * requests at a concurrency; `fill` sends hits to a store pre-filled with `entries` entries;
 * `big` downloads one huge streamed body and watches the process's memory.
 */
export type ScenarioKind = 'hit' | 'miss' | 'revalidate' | 'fill' | 'big'

/** `--quick` or a full run; each scenario says in which it runs by default. */
export type RunMode = 'quick' | 'full'

export const CLIENT_NAMES = [
  'raw',
  'undici-cache-builtin',
  'undici-cache-sqlite',
  'undici-cache-memory',
  'ceiling',
] as const

export type ClientName = (typeof CLIENT_NAMES)[number]

/** The baselines every client is compared with. */
export const RAW_CLIENT: ClientName = 'raw'
export const BUILTIN_CLIENT: ClientName = 'undici-cache-builtin'
export const CEILING_CLIENT: ClientName = 'ceiling'
export const SQLITE_CLIENT: ClientName = 'undici-cache-sqlite'
export const MEMORY_CLIENT: ClientName = 'undici-cache-memory'

export interface Scenario {
  /** Unique id, e.g. `hit-1k-c64`. */
  id: string
  kind: ScenarioKind
  /** Origin path; `miss` scenarios append a unique suffix per request, `fill` a query. */
  path: string
  concurrency: number
  /** Size of every response body, in bytes. */
  bodyBytes: number
  /** Measured requests in a full run / with `--quick`. */
  requests: number
  quickRequests: number
  /** Requests sent before measuring, in a full run / with `--quick`. */
  warmupRequests: number
  quickWarmupRequests: number
  /** Entries stored before measuring (`fill` only, else 0). */
  entries: number
  /** The run modes that include it unless `--scenario` names it. */
  modes: readonly RunMode[]
  /** The clients it runs with. */
  clients: readonly ClientName[]
}

const KIB = 1024
const MIB = 1024 * KIB
const GIB = 1024 * MIB
export const SIZE_BYTES = { '1k': KIB, '64k': 64 * KIB, '4m': 4 * MIB } as const
type SizeName = keyof typeof SIZE_BYTES

/** `--quick` sends this many times fewer requests. */
const QUICK_DIVISOR = 10
const WARMUP_REQUESTS = 2000
const QUICK_WARMUP_REQUESTS = 100
/** 4 MiB bodies warm up with fewer requests. */
const LARGE_BODY_WARMUP_REQUESTS = 100
const QUICK_LARGE_BODY_WARMUP_REQUESTS = 5
/** The byte every body of the origin's routes (and the ceiling's) is made of, by scenario kind. */
export const BODY_BYTE = { hit: 'h', revalidate: 'r', miss: 'm' } as const

/** How many of a body's first bytes a client checks, to tell one representation from another. */
export const CHECKED_PREFIX_BYTES = 16
/** Above this many entries the memory client skips `fill` (its in-process fill alone takes ~18 s at 10⁶). */
const MEMORY_FILL_MAX_ENTRIES = 100_000

const ALL_CLIENTS = CLIENT_NAMES
const CACHE_COMPARISON = CLIENT_NAMES.filter((name) => name !== CEILING_CLIENT)
const BOTH: readonly RunMode[] = ['quick', 'full']

function sized(kind: ScenarioKind, size: SizeName, concurrency: number, requests: number): Scenario {
  const large = size === '4m'
  return {
    id: `${kind}-${size}-c${concurrency}`,
    kind,
    path: `/${kind}/${size}`,
    concurrency,
    bodyBytes: SIZE_BYTES[size],
    requests,
    quickRequests: Math.ceil(requests / QUICK_DIVISOR),
    warmupRequests: large ? LARGE_BODY_WARMUP_REQUESTS : WARMUP_REQUESTS,
    quickWarmupRequests: large ? QUICK_LARGE_BODY_WARMUP_REQUESTS : QUICK_WARMUP_REQUESTS,
    entries: 0,
    modes: BOTH,
    clients: kind === 'hit' ? ALL_CLIENTS : CACHE_COMPARISON,
  }
}

/** Hits on 1 KiB entries of a store already holding `entries` of them, each on one picked at random. */
function fill(exponent: number, modes: readonly RunMode[]): Scenario {
  const entries = 10 ** exponent
  return {
    ...sized('hit', '1k', 64, 20_000),
    id: `fill-1e${exponent}-c64`,
    kind: 'fill',
    warmupRequests: WARMUP_REQUESTS,
    quickWarmupRequests: WARMUP_REQUESTS,
    entries,
    modes,
    clients: entries <= MEMORY_FILL_MAX_ENTRIES ? [SQLITE_CLIENT, MEMORY_CLIENT] : [SQLITE_CLIENT],
  }
}

/** One body of `mib` MiB streamed by the origin, stored then served (the undici memory cache cannot). */
function big(mib: number, modes: readonly RunMode[]): Scenario {
  return {
    id: mib >= 1024 ? `big-${mib / 1024}g` : `big-${mib}m`,
    kind: 'big',
    path: `/big?bytes=${mib * MIB}`,
    concurrency: 1,
    bodyBytes: mib * MIB,
    requests: 1,
    quickRequests: 1,
    warmupRequests: 1,
    quickWarmupRequests: 1,
    entries: 0,
    modes,
    clients: [RAW_CLIENT, SQLITE_CLIENT],
  }
}

export const SCENARIOS: readonly Scenario[] = [
  sized('hit', '1k', 1, 3_000),
  sized('hit', '1k', 64, 6_000),
  sized('hit', '64k', 1, 1_500),
  sized('hit', '64k', 64, 4_000),
  sized('hit', '4m', 1, 100),
  sized('hit', '4m', 64, 200),
  sized('revalidate', '1k', 1, 1_500),
  sized('revalidate', '1k', 64, 3_000),
  sized('miss', '1k', 1, 1_500),
  sized('miss', '1k', 64, 3_000),
  fill(3, BOTH),
  fill(4, ['quick']),
  fill(5, ['full']),
  fill(6, ['full']),
  big(256, ['quick']),
  big(1024, ['full']),
]

/** Bytes the SQLite client may keep in a `big` scenario: the body and some room. */
export const BIG_STORE_BYTES = 2 * GIB

export function findScenario(id: string): Scenario {
  const found = SCENARIOS.find((candidate) => candidate.id === id)
  if (!found) throw new Error(`unknown scenario ${id}; known: ${SCENARIOS.map((s) => s.id).join(', ')}`)
  return found
}

export function isClientName(name: string): name is ClientName {
  return (CLIENT_NAMES as readonly string[]).includes(name)
}

/** One client × request-rate scenario measurement, as a client process prints it. */
export interface RunResult {
  client: ClientName
  scenario: string
  concurrency: number
  requests: number
  seconds: number
  reqPerSec: number
  p50Ms: number
  p99Ms: number
  /** Requests that failed or answered an unexpected status. */
  errors: number
  /** Origin requests seen during warm-up and measurement. */
  originRequests: number
  /** false when a caching client did not cache (or revalidate) as the scenario requires. */
  cacheOk: boolean
  warning?: string
}

/** One download of a `big` scenario. */
export interface BigPhase {
  /** `download`: plain, no cache; `store`: first request through the cache; `serve`: the second. */
  phase: 'download' | 'store' | 'serve'
  bytes: number
  seconds: number
  /** Megabytes (10⁶ bytes) per second. */
  mbPerSec: number
  /** Peak RSS during the download minus the RSS right before it. */
  rssGrowthMiB: number
  originRequests: number
}

/** A `big` scenario's result, as a client process prints it. */
export interface BigResult {
  client: ClientName
  scenario: string
  bodyBytes: number
  /** RSS growth of the heap-warming plain download that precedes the measured ones. */
  warmupRssGrowthMiB: number
  phases: BigPhase[]
  cacheOk: boolean
  warning?: string
}
