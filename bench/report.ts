/** Turns the rounds' raw results into one summary per scenario × client, and prints them as tables. */
import {
  type BigResult,
  BUILTIN_CLIENT,
  CEILING_CLIENT,
  CLIENT_NAMES,
  type ClientName,
  findScenario,
  RAW_CLIENT,
  type RunResult,
  SCENARIOS,
} from './scenarios.js'
import { median, round } from './stats.js'

/** A client process that did not produce a result. */
export interface RunFailure {
  client: ClientName
  scenario: string
  error: string
}

export type RunOutcome = RunResult | RunFailure
export type BigOutcome = BigResult | RunFailure

/** The median over rounds of one scenario × client. */
export interface Summary {
  scenario: string
  client: ClientName
  concurrency: number
  /** Entries stored before measuring (`fill` scenarios), else 0. */
  entries: number
  rounds: number
  reqPerSec: number
  p50Ms: number
  p99Ms: number
  /** reqPerSec relative to raw undici (no cache) in the same scenario. */
  vsRaw: number
  /** reqPerSec relative to undici's built-in cache in the same scenario. */
  vsBuiltin: number
  /** reqPerSec relative to the canned ceiling in the same scenario (hits only). */
  vsCeiling: number
  errors: number
  /** false when any round found that the cache did not cache. */
  cacheOk: boolean
  /** Warnings and failures of the rounds. */
  notes: string[]
}

type Ratio = 'vsRaw' | 'vsBuiltin' | 'vsCeiling'

export function isFailure<T extends object>(outcome: T | RunFailure): outcome is RunFailure {
  return 'error' in outcome
}

function groupOutcomes(outcomes: readonly RunOutcome[]): Map<string, RunOutcome[]> {
  const groups = new Map<string, RunOutcome[]>()
  for (const outcome of outcomes) {
    const key = `${outcome.scenario}\u0000${outcome.client}`
    groups.set(key, [...(groups.get(key) ?? []), outcome])
  }
  return groups
}

function notesOf(outcomes: readonly (RunOutcome | BigOutcome)[]): string[] {
  const notes = outcomes.map((outcome) => (isFailure(outcome) ? `failed: ${outcome.error}` : outcome.warning))
  return [...new Set(notes.filter((note): note is string => note !== undefined))]
}

function summarizeGroup(outcomes: readonly RunOutcome[]): Omit<Summary, Ratio> {
  const first = outcomes[0] as RunOutcome
  const results = outcomes.filter((outcome): outcome is RunResult => !isFailure(outcome))
  return {
    scenario: first.scenario,
    client: first.client,
    concurrency: results[0]?.concurrency ?? Number.NaN,
    entries: findScenario(first.scenario).entries,
    rounds: results.length,
    // whole requests per second, as each round's (the median of an even count falls between two)
    reqPerSec: Math.round(median(results.map((result) => result.reqPerSec))),
    p50Ms: round(median(results.map((result) => result.p50Ms)), 3),
    p99Ms: round(median(results.map((result) => result.p99Ms)), 3),
    errors: results.reduce((sum, result) => sum + result.errors, 0),
    cacheOk: results.every((result) => result.cacheOk) && results.length === outcomes.length,
    notes: notesOf(outcomes),
  }
}

/** Scenarios in the order SCENARIOS lists them, then clients in the order of CLIENT_NAMES. */
function byScenarioThenClient(a: Omit<Summary, Ratio>, b: Omit<Summary, Ratio>): number {
  const scenarioIndex = (row: Omit<Summary, Ratio>) => SCENARIOS.findIndex((s) => s.id === row.scenario)
  const clientIndex = (row: Omit<Summary, Ratio>) => CLIENT_NAMES.indexOf(row.client)
  return scenarioIndex(a) - scenarioIndex(b) || clientIndex(a) - clientIndex(b)
}

/** One Summary per scenario × client, with ratios to the baselines. */
export function summarize(outcomes: readonly RunOutcome[]): Summary[] {
  const partial = [...groupOutcomes(outcomes).values()].map(summarizeGroup).sort(byScenarioThenClient)
  const rate = (scenario: string, client: ClientName) =>
    partial.find((row) => row.scenario === scenario && row.client === client)?.reqPerSec ?? Number.NaN
  return partial.map((row) => ({
    ...row,
    vsRaw: round(row.reqPerSec / rate(row.scenario, RAW_CLIENT), 2),
    vsBuiltin: round(row.reqPerSec / rate(row.scenario, BUILTIN_CLIENT), 2),
    vsCeiling: round(row.reqPerSec / rate(row.scenario, CEILING_CLIENT), 2),
  }))
}

function formatRatio(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '–'
}

function formatNumber(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '–'
}

function noteCell(cacheOk: boolean, errors: number, notes: readonly string[]): string {
  const flags = cacheOk ? [] : ['**NOT CACHED**']
  if (errors > 0) flags.push(`${errors} errors`)
  return [...flags, ...notes].join('; ').replaceAll('|', '\\|')
}

function markdown(header: readonly string[], align: string, rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`
  return [line(header), align, ...rows.map(line)].join('\n')
}

function rateCells(row: Summary): string[] {
  return [formatNumber(row.reqPerSec, 0), formatNumber(row.p50Ms, 3), formatNumber(row.p99Ms, 3)]
}

/** The request-rate scenarios (hits, misses, revalidations) as a markdown table. */
export function rateTable(rows: readonly Summary[]): string {
  const header = ['scenario', 'client', 'req/s', 'p50 ms', 'p99 ms', 'vs raw', 'vs builtin', 'vs ceiling']
  const cells = rows
    .filter((row) => row.entries === 0)
    .map((row) => [
      row.scenario,
      row.client,
      ...rateCells(row),
      formatRatio(row.vsRaw),
      formatRatio(row.vsBuiltin),
      formatRatio(row.vsCeiling),
      noteCell(row.cacheOk, row.errors, row.notes),
    ])
  return markdown([...header, 'notes'], '|---|---|--:|--:|--:|--:|--:|--:|---|', cells)
}

/** A fill row's req/s relative to the same client's with the fewest entries. */
export function vsFewestEntries(rows: readonly Summary[], row: Summary): number {
  const sameClient = rows.filter((other) => other.entries > 0 && other.client === row.client)
  const fewest = sameClient.reduce((best, other) => (other.entries < best.entries ? other : best), row)
  return round(row.reqPerSec / fewest.reqPerSec, 2)
}

/** The `fill` scenarios: hits on a store already holding many entries. */
export function fillTable(rows: readonly Summary[]): string {
  const cells = rows
    .filter((row) => row.entries > 0)
    .map((row) => [
      row.entries.toExponential().replace('e+', 'e'),
      row.client,
      ...rateCells(row),
      formatRatio(vsFewestEntries(rows, row)),
      noteCell(row.cacheOk, row.errors, row.notes),
    ])
  const header = ['entries stored', 'client', 'req/s', 'p50 ms', 'p99 ms', 'vs fewest entries', 'notes']
  return markdown(header, '|--:|---|--:|--:|--:|--:|---|', cells)
}

/** The `big` scenarios: throughput and peak RSS growth of each download. */
export function bigTable(outcomes: readonly BigOutcome[]): string {
  const cells = outcomes.flatMap((outcome) => {
    const notes = noteCell(isFailure(outcome) || outcome.cacheOk, 0, notesOf([outcome]))
    if (isFailure(outcome)) return [[outcome.scenario, outcome.client, '–', '–', '–', '–', notes]]
    return outcome.phases.map((phase) => [
      outcome.scenario,
      outcome.client,
      phase.phase,
      String(phase.mbPerSec),
      phase.rssGrowthMiB.toFixed(1),
      outcome.warmupRssGrowthMiB.toFixed(1),
      notes,
    ])
  })
  const header = [
    'scenario',
    'client',
    'phase',
    'MB/s',
    'peak RSS growth MiB',
    'warm-up download MiB',
    'notes',
  ]
  return markdown(header, '|---|---|---|--:|--:|--:|---|', cells)
}

/** A note for the big table: why undici's own cache is not in it. */
export const BIG_BUILTIN_NOTE =
  'undici-cache-builtin is not run: its MemoryCacheStore stores no body over maxEntrySize (5 MiB by default), so it would only download.'
