/** The targets of issue 5, checked for the default client (SqliteStore) against this run's numbers. */
import { type BigOutcome, isFailure, type Summary, vsFewestEntries } from './report.js'
import { SQLITE_CLIENT } from './scenarios.js'

export interface TargetCheck {
  target: string
  scenario: string
  measured: number
  unit: '×' | 'MiB'
  met: boolean
}

type Ratio = 'vsRaw' | 'vsBuiltin' | 'vsCeiling'

interface RatioRule {
  target: string
  scenarios: readonly string[]
  ratio: Ratio
  min: number
}

const SMALL_HITS = ['hit-1k-c1', 'hit-1k-c64', 'hit-64k-c1', 'hit-64k-c64']
const LARGE_HITS = ['hit-4m-c1', 'hit-4m-c64']
const RSS_LIMIT_MIB = 64
const FILL_MIN_RATIO = 0.8

const RATIO_RULES: readonly RatioRule[] = [
  { target: 'hits ≥ 1.0× undici memory cache', scenarios: SMALL_HITS, ratio: 'vsBuiltin', min: 1 },
  { target: 'hits (4 MiB) ≥ 0.5× undici memory cache', scenarios: LARGE_HITS, ratio: 'vsBuiltin', min: 0.5 },
  { target: 'hits ≥ 0.8× ceiling', scenarios: [...SMALL_HITS, ...LARGE_HITS], ratio: 'vsCeiling', min: 0.8 },
  { target: 'miss-and-store ≥ 0.8× raw (c1)', scenarios: ['miss-1k-c1'], ratio: 'vsRaw', min: 0.8 },
  { target: 'miss-and-store ≥ 0.5× raw (c64)', scenarios: ['miss-1k-c64'], ratio: 'vsRaw', min: 0.5 },
  {
    target: '304 revalidation ≥ 0.9× raw',
    scenarios: ['revalidate-1k-c1', 'revalidate-1k-c64'],
    ratio: 'vsRaw',
    min: 0.9,
  },
]

function ratioChecks(rows: readonly Summary[]): TargetCheck[] {
  return RATIO_RULES.flatMap((rule) =>
    rule.scenarios.flatMap((scenario) => {
      const row = rows.find(
        (candidate) => candidate.scenario === scenario && candidate.client === SQLITE_CLIENT,
      )
      if (!row) return []
      const measured = row[rule.ratio]
      if (!Number.isFinite(measured)) return []
      return [
        {
          target: rule.target,
          scenario,
          measured,
          unit: '×' as const,
          met: row.cacheOk && measured >= rule.min,
        },
      ]
    }),
  )
}

function fillChecks(rows: readonly Summary[]): TargetCheck[] {
  const fills = rows.filter((row) => row.entries > 0 && row.client === SQLITE_CLIENT)
  if (fills.length < 2) return []
  const most = fills.reduce((best, row) => (row.entries > best.entries ? row : best))
  const fewest = fills.reduce((best, row) => (row.entries < best.entries ? row : best))
  const measured = vsFewestEntries(rows, most)
  return [
    {
      target: `hits with ${most.entries} entries ≥ ${FILL_MIN_RATIO}× with ${fewest.entries}`,
      scenario: most.scenario,
      measured,
      unit: '×',
      met: most.cacheOk && fewest.cacheOk && measured >= FILL_MIN_RATIO,
    },
  ]
}

function bigChecks(outcomes: readonly BigOutcome[]): TargetCheck[] {
  return outcomes.flatMap((outcome) => {
    if (outcome.client !== SQLITE_CLIENT || isFailure(outcome)) return []
    return outcome.phases.map((phase) => ({
      target: `peak RSS growth ≤ ${RSS_LIMIT_MIB} MiB while ${phase.phase === 'store' ? 'storing' : 'serving'}`,
      scenario: outcome.scenario,
      measured: phase.rssGrowthMiB,
      unit: 'MiB' as const,
      met: outcome.cacheOk && phase.rssGrowthMiB <= RSS_LIMIT_MIB,
    }))
  })
}

/** Every target of issue 5 this run has numbers for. */
export function checkTargets(rows: readonly Summary[], big: readonly BigOutcome[]): TargetCheck[] {
  return [...ratioChecks(rows), ...bigChecks(big), ...fillChecks(rows)]
}

/** The checks as a markdown table. */
export function targetTable(checks: readonly TargetCheck[]): string {
  const rows = checks.map((check) => {
    const measured = check.unit === '×' ? `${check.measured.toFixed(2)}×` : `${check.measured.toFixed(1)} MiB`
    return `| ${check.target} | ${check.scenario} | ${measured} | ${check.met ? 'yes' : '**no**'} |`
  })
  return ['| target (undici-cache-sqlite) | scenario | measured | met |', '|---|---|--:|---|', ...rows].join(
    '\n',
  )
}
