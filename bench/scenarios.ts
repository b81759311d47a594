/** The benchmark's scenarios and clients, shared by the runner and the client processes. */

/** What a scenario's requests exercise in a caching client. */
export type ScenarioKind = 'hit' | 'miss' | 'revalidate'

export interface Scenario {
  /** Unique id, e.g. `hit-1k-c64`. */
  id: string
  kind: ScenarioKind
  /** Origin path; `miss` scenarios append a unique suffix per request. */
  path: string
  concurrency: number
  /** Size of every response body, in bytes. */
  bodyBytes: number
  /** Measured requests in a full run. */
  requests: number
  /** Measured requests with `--quick`. */
  quickRequests: number
}

export const CLIENT_NAMES = [
  'raw',
  'undici-cache-builtin',
  'undici-cache-sqlite',
  'undici-cache-memory',
] as const

const SIZE_BYTES = { '1k': 1024, '64k': 64 * 1024 } as const

type SizeName = keyof typeof SIZE_BYTES

/** `--quick` sends this many times fewer requests. */
const QUICK_DIVISOR = 10

export type ClientName = (typeof CLIENT_NAMES)[number]

/** The baselines every client is compared with. */
export const RAW_CLIENT: ClientName = 'raw'
export const BUILTIN_CLIENT: ClientName = 'undici-cache-builtin'

function scenario(kind: ScenarioKind, size: SizeName, concurrency: number, requests: number): Scenario {
  return {
    id: `${kind}-${size}-c${concurrency}`,
    kind,
    path: `/${kind}/${size}`,
    concurrency,
    bodyBytes: SIZE_BYTES[size],
    requests,
    quickRequests: Math.ceil(requests / QUICK_DIVISOR),
  }
}

export const SCENARIOS: readonly Scenario[] = [
  scenario('hit', '1k', 1, 3_000),
  scenario('hit', '1k', 64, 8_000),
  scenario('hit', '64k', 1, 1_500),
  scenario('hit', '64k', 64, 4_000),
  scenario('miss', '1k', 1, 1_500),
  scenario('miss', '1k', 64, 3_000),
  scenario('revalidate', '1k', 1, 1_500),
]

export function findScenario(id: string): Scenario {
  const found = SCENARIOS.find((candidate) => candidate.id === id)
  if (!found) throw new Error(`unknown scenario ${id}; known: ${SCENARIOS.map((s) => s.id).join(', ')}`)
  return found
}

export function isClientName(name: string): name is ClientName {
  return (CLIENT_NAMES as readonly string[]).includes(name)
}

/** One client × scenario measurement, as a client process prints it. */
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
