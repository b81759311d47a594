/** Turns the rounds' raw results into one summary per scenario × client, and prints them. */
import { BUILTIN_CLIENT, type ClientName, RAW_CLIENT, type RunResult } from './scenarios.js'
import { median, round } from './stats.js'

/** A client process that did not produce a result. */
export interface RunFailure {
  client: ClientName
  scenario: string
  error: string
}

export type RunOutcome = RunResult | RunFailure

/** The median over rounds of one scenario × client. */
export interface Summary {
  scenario: string
  client: ClientName
  concurrency: number
  rounds: number
  reqPerSec: number
  p50Ms: number
  p99Ms: number
  /** reqPerSec relative to raw undici (no cache) in the same scenario. */
  vsRaw: number
  /** reqPerSec relative to undici's built-in cache in the same scenario. */
  vsBuiltin: number
  errors: number
  /** false when any round found that the cache did not cache. */
  cacheOk: boolean
  /** Warnings and failures of the rounds. */
  notes: string[]
}

export function isFailure(outcome: RunOutcome): outcome is RunFailure {
  return 'error' in outcome
}

function groupKey(scenario: string, client: string): string {
  return `${scenario}\u0000${client}`
}

function groupOutcomes(outcomes: readonly RunOutcome[]): Map<string, RunOutcome[]> {
  const groups = new Map<string, RunOutcome[]>()
  for (const outcome of outcomes) {
    const key = groupKey(outcome.scenario, outcome.client)
    groups.set(key, [...(groups.get(key) ?? []), outcome])
  }
  return groups
}

function notesOf(outcomes: readonly RunOutcome[]): string[] {
  const notes = outcomes.map((outcome) => (isFailure(outcome) ? `failed: ${outcome.error}` : outcome.warning))
  return [...new Set(notes.filter((note): note is string => note !== undefined))]
}

function summarizeGroup(outcomes: readonly RunOutcome[]): Omit<Summary, 'vsRaw' | 'vsBuiltin'> {
  const first = outcomes[0] as RunOutcome
  const results = outcomes.filter((outcome): outcome is RunResult => !isFailure(outcome))
  return {
    scenario: first.scenario,
    client: first.client,
    concurrency: results[0]?.concurrency ?? Number.NaN,
    rounds: results.length,
    reqPerSec: median(results.map((result) => result.reqPerSec)),
    p50Ms: median(results.map((result) => result.p50Ms)),
    p99Ms: median(results.map((result) => result.p99Ms)),
    errors: results.reduce((sum, result) => sum + result.errors, 0),
    cacheOk: results.every((result) => result.cacheOk) && results.length === outcomes.length,
    notes: notesOf(outcomes),
  }
}

/** One Summary per scenario × client, in the order first seen, with ratios to the baselines. */
export function summarize(outcomes: readonly RunOutcome[]): Summary[] {
  const partial = [...groupOutcomes(outcomes).values()].map(summarizeGroup)
  const rate = (scenario: string, client: ClientName) =>
    partial.find((row) => row.scenario === scenario && row.client === client)?.reqPerSec ?? Number.NaN
  return partial.map((row) => ({
    ...row,
    vsRaw: round(row.reqPerSec / rate(row.scenario, RAW_CLIENT), 2),
    vsBuiltin: round(row.reqPerSec / rate(row.scenario, BUILTIN_CLIENT), 2),
  }))
}

function formatRatio(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '–'
}

function formatNumber(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '–'
}

function noteCell(row: Summary): string {
  const notes = row.cacheOk ? [] : ['**NOT CACHED**']
  if (row.errors > 0) notes.push(`${row.errors} errors`)
  return [...notes, ...row.notes].join('; ').replaceAll('|', '\\|')
}

function tableRow(row: Summary): string {
  const cells = [
    row.scenario,
    row.client,
    formatNumber(row.reqPerSec, 0),
    formatNumber(row.p50Ms, 3),
    formatNumber(row.p99Ms, 3),
    formatRatio(row.vsRaw),
    formatRatio(row.vsBuiltin),
    noteCell(row),
  ]
  return `| ${cells.join(' | ')} |`
}

/** The summaries as a markdown table. */
export function markdownTable(rows: readonly Summary[]): string {
  const header = '| scenario | client | req/s | p50 ms | p99 ms | vs raw | vs builtin | notes |'
  const rule = '|---|---|--:|--:|--:|--:|--:|---|'
  return [header, rule, ...rows.map(tableRow)].join('\n')
}
