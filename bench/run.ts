/**
 * `npm run bench [-- --quick] [-- --json] [--rounds N] [--scenario ID]... [--client NAME]...`
 * Starts the origin process, runs every scenario × client in a fresh client process (with --quick, one
 * process per client and round runs all its request-rate scenarios), in interleaved rounds, prints the
 * medians as markdown tables (or JSON), then the policy micro-benchmark (not with --scenario).
 * Always writes bench/results/latest.json and bench/results/latest.svg.
 */
import { mkdtempSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { bundleClient } from './bundle.js'
import { barChartSvg } from './chart.js'
import { collectStdout, installCleanup, spawnScript, startOrigin } from './children.js'
import { filledSqlitePath } from './fill.js'
import { type MicroRow, microTable, runMicro } from './micro.js'
import {
  BIG_BUILTIN_NOTE,
  type BigOutcome,
  bigTable,
  fillTable,
  isFailure,
  type RunFailure,
  type RunOutcome,
  rateTable,
  type Summary,
  summarize,
} from './report.js'
import {
  type BigResult,
  CLIENT_NAMES,
  type ClientName,
  findScenario,
  isClientName,
  type RunResult,
  SCENARIOS,
  type Scenario,
  SQLITE_CLIENT,
} from './scenarios.js'
import { checkTargets, type TargetCheck, targetTable } from './targets.js'

const RESULTS_DIR = fileURLToPath(new URL('results/', import.meta.url))
/** Rounds of a full run. A c1 process is cheap and its rate swings most, so c1 scenarios get more. */
const FULL_ROUNDS = 4
/** Rounds of the c64 and many-entry scenarios in a full run. */
const FULL_HEAVY_ROUNDS = 3

interface RunPlan {
  quick: boolean
  json: boolean
  rounds: number
  /** Rounds of the c64 and many-entry scenarios (at most `rounds`). */
  heavyRounds: number
  scenarios: readonly Scenario[]
  clients: readonly ClientName[]
  /** Whether the micro-benchmark runs too (not when --scenario picks scenarios). */
  micro: boolean
}

/** One client process: a client and the scenarios it measures, in order. */
interface Job {
  client: ClientName
  scenarios: readonly Scenario[]
}

interface Environment {
  origin: string
  tmpDir: string
  clientScript: string
}

interface Outcomes {
  rates: RunOutcome[]
  big: BigOutcome[]
}

function parseClientNames(names: readonly string[] | undefined): readonly ClientName[] {
  if (!names) return CLIENT_NAMES
  for (const name of names) if (!isClientName(name)) throw new Error(`unknown --client ${name}`)
  return names as ClientName[]
}

function parsePlan(argv: string[]): RunPlan {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      scenario: { type: 'string', multiple: true },
      client: { type: 'string', multiple: true },
    },
  })
  const mode = values.quick ? 'quick' : 'full'
  const rounds = Number(values.rounds ?? (values.quick ? 1 : FULL_ROUNDS))
  return {
    quick: values.quick,
    json: values.json,
    rounds,
    heavyRounds: values.rounds !== undefined || values.quick ? rounds : FULL_HEAVY_ROUNDS,
    scenarios: values.scenario?.map(findScenario) ?? SCENARIOS.filter((s) => s.modes.includes(mode)),
    clients: parseClientNames(values.client),
    micro: values.scenario === undefined,
  }
}

/** The items in a different order each round, so no client always runs first or last. */
function rotate<T>(items: readonly T[], by: number): T[] {
  const shift = items.length === 0 ? 0 : by % items.length
  return [...items.slice(shift), ...items.slice(0, shift)]
}

/** The client processes of one round; `big` scenarios run in the first round only, one per process. */
function jobsOfRound(plan: RunPlan, round: number): Job[] {
  const clientsOf = (scenario: Scenario) =>
    rotate(
      plan.clients.filter((client) => scenario.clients.includes(client)),
      round,
    )
  const single = (scenario: Scenario) =>
    clientsOf(scenario).map((client) => ({ client, scenarios: [scenario] }))
  const inRound = (scenario: Scenario) => scenario.concurrency === 1 || round < plan.heavyRounds
  const rates = plan.scenarios.filter((scenario) => scenario.kind !== 'big' && inRound(scenario))
  const bigs = round === 0 ? plan.scenarios.filter((scenario) => scenario.kind === 'big') : []
  const rateJobs = plan.quick
    ? rotate(plan.clients, round)
        .map((client) => ({
          client,
          scenarios: rates.filter((scenario) => scenario.clients.includes(client)),
        }))
        .filter((job) => job.scenarios.length > 0)
    : rates.flatMap(single)
  return [...rateJobs, ...bigs.flatMap(single)]
}

function clientArgs(plan: RunPlan, job: Job, env: Environment): string[] {
  return [
    ['--client', job.client],
    ...job.scenarios.map((scenario) => ['--scenario', scenario.id]),
    plan.quick ? ['--quick'] : [],
    ['--origin', env.origin],
    ['--tmp-dir', env.tmpDir],
  ].flat()
}

/** Runs one client process; a scenario it printed no result for becomes a failure. */
async function runJob(plan: RunPlan, job: Job, env: Environment): Promise<(RunOutcome | BigOutcome)[]> {
  const label = `client ${job.client}`
  const { stdout, failure } = await collectStdout(
    spawnScript(env.clientScript, clientArgs(plan, job, env)),
    label,
  )
  const results = stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as RunResult | BigResult)
  const error = failure ?? `${label} printed no result`
  const missing = job.scenarios.filter(
    (scenario) => !results.some((result) => result.scenario === scenario.id),
  )
  const failures = missing.map(
    (scenario): RunFailure => ({ client: job.client, scenario: scenario.id, error }),
  )
  return [...results, ...failures]
}

function describe(outcome: RunOutcome | BigOutcome): string {
  if (isFailure(outcome)) return `FAILED ${outcome.error}`
  const flag = outcome.cacheOk ? '' : ' NOT CACHED'
  if ('phases' in outcome) {
    const phases = outcome.phases.map((p) => `${p.phase} ${p.mbPerSec} MB/s +${p.rssGrowthMiB} MiB RSS`)
    return `${phases.join(', ')}${flag}`
  }
  return `${String(outcome.reqPerSec).padStart(7)} req/s  p99 ${outcome.p99Ms} ms${flag}`
}

function resultCount(plan: RunPlan): number {
  const jobs = Array.from({ length: plan.rounds }, (_, round) => jobsOfRound(plan, round)).flat()
  return jobs.reduce((sum, job) => sum + job.scenarios.length, 0)
}

async function runRounds(plan: RunPlan, env: Environment): Promise<Outcomes> {
  const outcomes: Outcomes = { rates: [], big: [] }
  const total = resultCount(plan)
  for (let round = 0; round < plan.rounds; round++) {
    for (const job of jobsOfRound(plan, round)) {
      for (const outcome of await runJob(plan, job, env)) {
        const isBig = findScenario(outcome.scenario).kind === 'big'
        if (isBig) outcomes.big.push(outcome as BigOutcome)
        else outcomes.rates.push(outcome as RunOutcome)
        const done = outcomes.rates.length + outcomes.big.length
        const where = `[${done}/${total}] round ${round + 1}/${plan.rounds}`
        process.stderr.write(
          `${where} ${outcome.scenario.padEnd(18)} ${outcome.client.padEnd(21)} ${describe(outcome)}\n`,
        )
      }
    }
  }
  return outcomes
}

async function undiciVersion(): Promise<string> {
  const manifest = new URL('../node_modules/undici/package.json', import.meta.url)
  return (JSON.parse(await readFile(manifest, 'utf8')) as { version: string }).version
}

interface Report {
  date: string
  node: string
  undici: string
  cpus: number
  cpuModel: string
  /** 1, 5 and 15 minute load averages when the run started: other work on the box skews the numbers. */
  loadAverageAtStart: number[]
  quick: boolean
  rounds: number
  heavyRounds: number
  seconds: number
  summary: Summary[]
  big: BigOutcome[]
  targets: TargetCheck[]
  micro: MicroRow[]
  runs: RunOutcome[]
}

function roundsText(rounds: number, heavyRounds: number): string {
  if (rounds === 1) return 'one round'
  if (heavyRounds === rounds) return `median of ${rounds} rounds`
  return `median of ${rounds} rounds at c1, ${heavyRounds} at c64`
}

function chartCaption(report: Report): { title: string; subtitle: string } {
  const mode = report.quick ? 'quick run, ' : ''
  return {
    title: `undici-cache: requests per second (${mode}${roundsText(report.rounds, report.heavyRounds)}; each scenario scaled to its fastest cache)`,
    subtitle: `${report.date.slice(0, 10)} · Node ${report.node} · undici ${report.undici} · ${report.cpus} × ${report.cpuModel}`,
  }
}

async function writeLatest(report: Report): Promise<void> {
  await mkdir(RESULTS_DIR, { recursive: true })
  await writeFile(join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`)
  await writeFile(join(RESULTS_DIR, 'latest.svg'), barChartSvg(report.summary, chartCaption(report)))
}

/** Quick windows last milliseconds: JIT tiers and GC pauses, not steady rates. */
const QUICK_TARGETS_NOTE =
  'Quick mode: each window lasts milliseconds, so these say only that the run works; judge targets by a full run.'

function markdownReport(report: Report): string {
  const fills = report.summary.filter((row) => row.entries > 0)
  const sections = [
    [`## Request rate (${roundsText(report.rounds, report.heavyRounds)})`, rateTable(report.summary)],
    fills.length > 0 ? ['## Hits with many entries stored', fillTable(report.summary)] : [],
    report.big.length > 0 ? ['## One streamed body', bigTable(report.big), BIG_BUILTIN_NOTE] : [],
    report.targets.length > 0
      ? ['## Targets (issue 5)', targetTable(report.targets), ...(report.quick ? [QUICK_TARGETS_NOTE] : [])]
      : [],
    report.micro.length > 0 ? ['## Policy micro-benchmark', microTable(report.micro)] : [],
  ]
  return `${sections
    .filter((section) => section.length > 0)
    .map((section) => section.join('\n\n'))
    .join('\n\n')}\n`
}

/** SQLite files the `fill` scenarios need, filled before the rounds (not within the first one's client). */
async function fillFirst(plan: RunPlan, origin: string): Promise<void> {
  if (!plan.clients.includes(SQLITE_CLIENT)) return
  for (const scenario of plan.scenarios) {
    if (scenario.kind === 'fill' && scenario.clients.includes(SQLITE_CLIENT))
      await filledSqlitePath(origin, scenario.entries)
  }
}

async function main(): Promise<void> {
  const plan = parsePlan(process.argv.slice(2))
  const tmpDir = mkdtempSync(join(tmpdir(), 'undici-cache-bench-'))
  installCleanup(tmpDir)
  const startMs = Date.now()
  const loadAverageAtStart = loadavg().map((load) => Math.round(load * 100) / 100)
  const [origin, clientScript] = await Promise.all([startOrigin(), bundleClient(tmpDir)])
  await fillFirst(plan, origin.url)
  const outcomes = await runRounds(plan, { origin: origin.url, tmpDir, clientScript })
  origin.stop()
  if (plan.micro) process.stderr.write('micro-benchmark of the policy functions…\n')
  const micro = plan.micro ? await runMicro({ quick: plan.quick }) : []
  const summary = summarize(outcomes.rates)
  const report: Report = {
    date: new Date().toISOString(),
    node: process.version,
    undici: await undiciVersion(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    loadAverageAtStart,
    quick: plan.quick,
    rounds: plan.rounds,
    heavyRounds: plan.heavyRounds,
    seconds: Math.round((Date.now() - startMs) / 1000),
    summary,
    big: outcomes.big,
    targets: checkTargets(summary, outcomes.big),
    micro,
    runs: outcomes.rates,
  }
  await writeLatest(report)
  process.stdout.write(plan.json ? `${JSON.stringify(report, null, 2)}\n` : markdownReport(report))
  process.stderr.write(`done in ${report.seconds} s; wrote bench/results/latest.json and latest.svg\n`)
}

await main()
