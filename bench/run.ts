/**
 * `npm run bench [-- --quick] [-- --json] [--rounds N] [--scenario ID]... [--client NAME]...`
 * Starts the origin process, runs every scenario × client in a fresh client process, in interleaved
 * rounds, and prints the medians as a markdown table (or JSON). Always writes bench/results/latest.json.
 */
import { mkdtempSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { collectStdout, installCleanup, spawnScript, startOrigin } from './children.js'
import { isFailure, markdownTable, type RunOutcome, type Summary, summarize } from './report.js'
import {
  CLIENT_NAMES,
  type ClientName,
  findScenario,
  isClientName,
  type RunResult,
  SCENARIOS,
  type Scenario,
} from './scenarios.js'

const CLIENT_SCRIPT = fileURLToPath(new URL('client.ts', import.meta.url))
const RESULTS_DIR = fileURLToPath(new URL('results/', import.meta.url))
const FULL_ROUNDS = 3
const FULL_WARMUP_REQUESTS = 200
const QUICK_WARMUP_REQUESTS = 50

interface RunPlan {
  quick: boolean
  json: boolean
  rounds: number
  scenarios: readonly Scenario[]
  clients: readonly ClientName[]
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
  return {
    quick: values.quick,
    json: values.json,
    rounds: Number(values.rounds ?? (values.quick ? 1 : FULL_ROUNDS)),
    scenarios: values.scenario?.map(findScenario) ?? SCENARIOS,
    clients: parseClientNames(values.client),
  }
}

/** The clients in a different order each round, so no client always runs first or last. */
function rotate<T>(items: readonly T[], by: number): T[] {
  const shift = by % items.length
  return [...items.slice(shift), ...items.slice(0, shift)]
}

async function runClient(
  plan: RunPlan,
  scenario: Scenario,
  client: ClientName,
  env: { origin: string; tmpDir: string },
): Promise<RunOutcome> {
  const args = [
    ['--client', client],
    ['--scenario', scenario.id],
    ['--requests', String(plan.quick ? scenario.quickRequests : scenario.requests)],
    ['--warmup', String(plan.quick ? QUICK_WARMUP_REQUESTS : FULL_WARMUP_REQUESTS)],
    ['--origin', env.origin],
    ['--tmp-dir', env.tmpDir],
  ].flat()
  try {
    const stdout = await collectStdout(spawnScript(CLIENT_SCRIPT, args), `client ${client} ${scenario.id}`)
    return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as RunResult
  } catch (error) {
    return { client, scenario: scenario.id, error: error instanceof Error ? error.message : String(error) }
  }
}

function progressLine(round: number, plan: RunPlan, outcome: RunOutcome): string {
  const prefix = `[round ${round + 1}/${plan.rounds}] ${outcome.scenario.padEnd(18)} ${outcome.client.padEnd(22)}`
  if (isFailure(outcome)) return `${prefix} FAILED ${outcome.error}\n`
  const flag = outcome.cacheOk ? '' : ' NOT CACHED'
  return `${prefix} ${String(outcome.reqPerSec).padStart(7)} req/s  p99 ${outcome.p99Ms} ms${flag}\n`
}

async function runRounds(plan: RunPlan, env: { origin: string; tmpDir: string }): Promise<RunOutcome[]> {
  const outcomes: RunOutcome[] = []
  for (let round = 0; round < plan.rounds; round++) {
    for (const scenario of plan.scenarios) {
      for (const client of rotate(plan.clients, round)) {
        const outcome = await runClient(plan, scenario, client, env)
        process.stderr.write(progressLine(round, plan, outcome))
        outcomes.push(outcome)
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
  quick: boolean
  rounds: number
  seconds: number
  summary: Summary[]
  runs: RunOutcome[]
}

async function buildReport(plan: RunPlan, outcomes: RunOutcome[], seconds: number): Promise<Report> {
  return {
    date: new Date().toISOString(),
    node: process.version,
    undici: await undiciVersion(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    quick: plan.quick,
    rounds: plan.rounds,
    seconds: Math.round(seconds),
    summary: summarize(outcomes),
    runs: outcomes,
  }
}

async function writeLatest(report: Report): Promise<void> {
  await mkdir(RESULTS_DIR, { recursive: true })
  await writeFile(join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`)
}

async function main(): Promise<void> {
  const plan = parsePlan(process.argv.slice(2))
  const tmpDir = mkdtempSync(join(tmpdir(), 'undici-cache-bench-'))
  installCleanup(tmpDir)
  const startMs = Date.now()
  const origin = await startOrigin()
  const outcomes = await runRounds(plan, { origin: origin.url, tmpDir })
  origin.stop()
  const report = await buildReport(plan, outcomes, (Date.now() - startMs) / 1000)
  await writeLatest(report)
  process.stdout.write(
    plan.json ? `${JSON.stringify(report, null, 2)}\n` : `${markdownTable(report.summary)}\n`,
  )
  process.stderr.write(`done in ${report.seconds} s; wrote bench/results/latest.json\n`)
}

await main()
