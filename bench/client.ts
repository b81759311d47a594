/**
 * One measurement, run in a fresh process: builds the named client's dispatcher, fills and warms
 * it, sends the scenario's requests at its concurrency and prints one JSON RunResult line.
 *
 *   node --import tsx bench/client.ts --client undici-cache-sqlite --scenario hit-1k-c64 [--requests N]
 *     [--warmup N] [--origin http://127.0.0.1:PORT --tmp-dir DIR]
 *
 * Without --origin it starts its own origin process (handy with `node --cpu-prof`).
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { type Dispatcher, request } from 'undici'
import { installCleanup, startOrigin } from './children.js'
import { createClient } from './clients.js'
import { exitWhenParentGone } from './process-guard.js'
import { type ClientName, findScenario, isClientName, type RunResult, type Scenario } from './scenarios.js'
import { percentile, round } from './stats.js'

const DEFAULT_WARMUP_REQUESTS = 200

interface ClientArgs {
  client: ClientName
  scenario: Scenario
  requests: number
  warmupRequests: number
  origin: string | undefined
  tmpDir: string | undefined
}

interface OriginCounts {
  requests: number
  notModified: number
}

interface Measurement {
  seconds: number
  latenciesMs: Float64Array
  errors: number
}

function parseClientArgs(argv: string[]): ClientArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      client: { type: 'string' },
      scenario: { type: 'string' },
      requests: { type: 'string' },
      warmup: { type: 'string' },
      origin: { type: 'string' },
      'tmp-dir': { type: 'string' },
    },
  })
  const client = values.client ?? ''
  if (!isClientName(client)) throw new Error(`unknown or missing --client ${client}`)
  const scenario = findScenario(values.scenario ?? '')
  return {
    client,
    scenario,
    requests: Number(values.requests ?? scenario.requests),
    warmupRequests: Number(values.warmup ?? DEFAULT_WARMUP_REQUESTS),
    origin: values.origin,
    tmpDir: values['tmp-dir'],
  }
}

/** The origin's request counters, read past every cache (through undici's global dispatcher). */
async function readCounts(origin: string): Promise<OriginCounts> {
  const res = await request(`${origin}/__count`)
  return (await res.body.json()) as OriginCounts
}

/** Builds the URL of request `index` of `phase`; miss scenarios get a URL never asked before. */
function urlMaker(scenario: Scenario, origin: string): (phase: string, index: number) => string {
  const base = `${origin}${scenario.path}`
  if (scenario.kind !== 'miss') return () => base
  const runId = randomUUID()
  return (phase, index) => `${base}/${runId}-${phase}-${index}`
}

/** Sends one GET and reads its body whole; true when it answered 200 with the expected body size. */
async function fetchOnce(dispatcher: Dispatcher, url: string, bodyBytes: number): Promise<boolean> {
  try {
    const res = await request(url, { dispatcher })
    const body = await res.body.arrayBuffer()
    return res.statusCode === 200 && body.byteLength === bodyBytes
  } catch {
    return false
  }
}

/** Calls `task(0..count-1)`, at most `concurrency` at a time. */
async function runConcurrently(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < count) await task(next++)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
}

async function sendRequests(
  dispatcher: Dispatcher,
  scenario: Scenario,
  urlFor: (index: number) => string,
  count: number,
): Promise<Measurement> {
  const latenciesMs = new Float64Array(count)
  let errors = 0
  const startMs = performance.now()
  await runConcurrently(count, scenario.concurrency, async (index) => {
    const sentMs = performance.now()
    if (!(await fetchOnce(dispatcher, urlFor(index), scenario.bodyBytes))) errors++
    latenciesMs[index] = performance.now() - sentMs
  })
  return { seconds: (performance.now() - startMs) / 1000, latenciesMs, errors }
}

/** Asks a miss URL again: a caching client must answer it without the origin. */
async function missWasStored(dispatcher: Dispatcher, origin: string, url: string, bodyBytes: number) {
  const before = await readCounts(origin)
  await fetchOnce(dispatcher, url, bodyBytes)
  const after = await readCounts(origin)
  return after.requests === before.requests
}

/** Why a caching client's origin traffic shows it did not cache as the scenario needs, if it did not. */
function cachingProblem(scenario: Scenario, delta: OriginCounts, missStored: boolean): string | undefined {
  if (scenario.kind === 'hit' && delta.requests !== 1) {
    return `expected 1 origin request for ${scenario.path}, saw ${delta.requests}: the cache did not cache`
  }
  if (scenario.kind === 'revalidate' && delta.notModified !== delta.requests - 1) {
    const expected = delta.requests - 1
    return `${delta.notModified} of ${delta.requests} origin requests were 304s, expected ${expected}: not every request revalidated`
  }
  if (scenario.kind === 'miss' && !missStored)
    return 'a missed response was not stored: the cache did not cache'
  return undefined
}

function buildResult(
  args: ClientArgs,
  measured: Measurement,
  delta: OriginCounts,
  problem?: string,
): RunResult {
  const result: RunResult = {
    client: args.client,
    scenario: args.scenario.id,
    concurrency: args.scenario.concurrency,
    requests: args.requests,
    seconds: round(measured.seconds, 3),
    reqPerSec: Math.round(args.requests / measured.seconds),
    p50Ms: round(percentile(measured.latenciesMs, 0.5), 3),
    p99Ms: round(percentile(measured.latenciesMs, 0.99), 3),
    errors: measured.errors,
    originRequests: delta.requests,
    cacheOk: problem === undefined,
  }
  if (problem !== undefined) result.warning = problem
  return result
}

interface Environment {
  origin: string
  tmpDir: string
}

/** The runner's origin and temp directory, or, run alone, an origin and temp directory of its own. */
async function prepareEnvironment(args: ClientArgs): Promise<Environment> {
  if (args.origin !== undefined) {
    exitWhenParentGone()
    return { origin: args.origin, tmpDir: args.tmpDir ?? tmpdir() }
  }
  const tmpDir = mkdtempSync(join(tmpdir(), 'undici-cache-bench-'))
  installCleanup(tmpDir)
  return { origin: (await startOrigin()).url, tmpDir }
}

async function benchmark(args: ClientArgs, { origin, tmpDir }: Environment): Promise<RunResult> {
  const { scenario } = args
  const client = await createClient(args.client, tmpDir)
  const makeUrl = urlMaker(scenario, origin)
  const before = await readCounts(origin)
  if (scenario.kind !== 'miss') await fetchOnce(client.dispatcher, makeUrl('fill', 0), scenario.bodyBytes)
  await sendRequests(client.dispatcher, scenario, (i) => makeUrl('warmup', i), args.warmupRequests)
  const measured = await sendRequests(client.dispatcher, scenario, (i) => makeUrl('run', i), args.requests)
  const after = await readCounts(origin)
  const delta = {
    requests: after.requests - before.requests,
    notModified: after.notModified - before.notModified,
  }
  const lastUrl = makeUrl('run', args.requests - 1)
  const missStored =
    scenario.kind === 'miss' &&
    client.caches &&
    (await missWasStored(client.dispatcher, origin, lastUrl, scenario.bodyBytes))
  await client.close()
  const problem = client.caches ? cachingProblem(scenario, delta, missStored) : undefined
  return buildResult(args, measured, delta, problem)
}

async function main(): Promise<void> {
  const args = parseClientArgs(process.argv.slice(2))
  const result = await benchmark(args, await prepareEnvironment(args))
  if (result.warning) process.stderr.write(`WARNING ${result.client} ${result.scenario}: ${result.warning}\n`)
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0)
}

await main()
