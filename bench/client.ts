/**
 * Measurements, run in a fresh process: for each scenario named, builds the client's dispatcher, fills
 * and warms it, sends the scenario's requests at its concurrency and prints one JSON result line.
 *
 *   node --import tsx bench/client.ts --client undici-cache-sqlite --scenario hit-1k-c64 [--scenario ...]
 *     [--quick] [--requests N] [--warmup N] [--origin http://127.0.0.1:PORT --tmp-dir DIR]
 *
 * Without --origin it starts its own origin process (handy with `node --cpu-prof`).
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { Dispatcher } from 'undici'
import { runBig } from './big.js'
import { installCleanup, startOrigin } from './children.js'
import { type BenchClient, createClient } from './clients.js'
import { filledSqlitePath, fillLimits, fillPrefix, fillStore, fillUrl, readThrough } from './fill.js'
import {
  countsBetween,
  type Expected,
  fetchOnce,
  type Measurement,
  type OriginCounts,
  readCounts,
  sendRequests,
  type Target,
} from './load.js'
import { exitWhenParentGone } from './process-guard.js'
import {
  type BigResult,
  BODY_BYTE,
  CHECKED_PREFIX_BYTES,
  type ClientName,
  findScenario,
  isClientName,
  MEMORY_CLIENT,
  type RunResult,
  type Scenario,
  SIZE_BYTES,
} from './scenarios.js'
import { percentile, round } from './stats.js'

interface ClientArgs {
  client: ClientName
  scenarios: Scenario[]
  quick: boolean
  requests: number | undefined
  warmupRequests: number | undefined
  origin: string | undefined
  tmpDir: string | undefined
}

interface Environment {
  origin: string
  tmpDir: string
}

/** A client ready to measure, and what each request of `phase` ('warmup' or 'run') asks for. */
interface Prepared {
  client: BenchClient
  targetFor(phase: string): Target
  /** Requests the preparation sent (to store what the scenario then asks for). */
  sent: number
}

function optionalNumber(value: string | undefined): number | undefined {
  return value === undefined ? undefined : Number(value)
}

function parseClientArgs(argv: string[]): ClientArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      client: { type: 'string' },
      scenario: { type: 'string', multiple: true },
      quick: { type: 'boolean', default: false },
      requests: { type: 'string' },
      warmup: { type: 'string' },
      origin: { type: 'string' },
      'tmp-dir': { type: 'string' },
    },
  })
  const client = values.client ?? ''
  if (!isClientName(client)) throw new Error(`unknown or missing --client ${client}`)
  return {
    client,
    scenarios: (values.scenario ?? []).map(findScenario),
    quick: values.quick,
    requests: optionalNumber(values.requests),
    warmupRequests: optionalNumber(values.warmup),
    origin: values.origin,
    tmpDir: values['tmp-dir'],
  }
}

/**
 * Warms up in batches of about WARMUP_BATCH_MS until `minMs` have passed, at least one: the rate (requests
 * per ms) the last batch reached, a better guess than the first requests' (JIT tiers, a body still read
 * from its file).
 */
async function warmedUpRate(
  dispatcher: Dispatcher,
  scenario: Scenario,
  warmed: Measurement,
  warmup: number,
  target: Target,
  minMs: number,
): Promise<number> {
  let elapsedMs = warmed.seconds * 1000
  let perMs = warmup / Math.max(1, elapsedMs)
  let batchMs = 0
  let batches = 0
  // until a batch lasted half its aim too: one sized by a slower rate is short, and its rate noisy
  do {
    const count = Math.min(
      MAX_HIT_REQUESTS,
      Math.max(scenario.concurrency, Math.ceil(perMs * WARMUP_BATCH_MS)),
    )
    const batch = await sendRequests(dispatcher, { ...scenario, count }, target)
    batchMs = batch.seconds * 1000
    elapsedMs += batchMs
    perMs = count / Math.max(0.1, batchMs)
    batches++
  } while (batches < MAX_WARMUP_BATCHES && (elapsedMs < minMs || batchMs < WARMUP_BATCH_MS / 2))
  return perMs
}

/** Two measurements of the same load, one after the other, as one. */
function joined(first: Measurement, then: Measurement): Measurement {
  const latenciesMs = new Float64Array(first.latenciesMs.length + then.latenciesMs.length)
  latenciesMs.set(first.latenciesMs)
  latenciesMs.set(then.latenciesMs, first.latenciesMs.length)
  return { seconds: first.seconds + then.seconds, latenciesMs, errors: first.errors + then.errors }
}

/** The body a request of `scenario` expects: the origin's bytes for its kind. */
function expectedOf(scenario: Scenario): Expected {
  const byte = BODY_BYTE[scenario.kind as keyof typeof BODY_BYTE]
  return { bodyBytes: scenario.bodyBytes, prefix: Buffer.alloc(CHECKED_PREFIX_BYTES, byte) }
}

/**
 * What each request of `phase` asks for. Misses get a URL never asked before; each worker of a 304
 * scenario revalidates a URL of its own, so that no request waits on another's revalidation (a cache
 * that collapses identical requests would send one conditional request for all 64 workers).
 */
function targetMaker(scenario: Scenario, origin: string): (phase: string) => Target {
  const base = `${origin}${scenario.path}`
  const expected = expectedOf(scenario)
  if (scenario.kind === 'miss') {
    const runId = randomUUID()
    return (phase) => (index) => ({ url: `${base}/${runId}-${phase}-${index}`, expected })
  }
  if (scenario.kind === 'revalidate') {
    const own = Array.from({ length: scenario.concurrency }, (_, worker) => ({
      url: `${base}?w=${worker}`,
      expected,
    }))
    return () => (_index, worker) => own[worker] as { url: string; expected: Expected }
  }
  const only = { url: base, expected }
  return () => () => only
}

/** A client over a store already holding `scenario.entries` entries; each request asks for one at random. */
async function prepareFilled(name: ClientName, scenario: Scenario, env: Environment): Promise<Prepared> {
  const { entries } = scenario
  const limits = fillLimits(entries)
  const inMemory = name === MEMORY_CLIENT
  const sqlitePath = inMemory ? undefined : await filledSqlitePath(env.origin, entries)
  if (sqlitePath !== undefined) await readThrough(sqlitePath)
  const client = await createClient(name, env.tmpDir, { limits, sqlitePath })
  if (inMemory && client.store) await fillStore(client.store, env.origin, entries)
  const target: Target = () => {
    const index = Math.floor(Math.random() * entries)
    return {
      url: fillUrl(env.origin, index),
      expected: { bodyBytes: scenario.bodyBytes, prefix: fillPrefix(index) },
    }
  }
  return { client, targetFor: () => target, sent: 0 }
}

async function prepare(name: ClientName, scenario: Scenario, env: Environment): Promise<Prepared> {
  if (scenario.kind === 'fill') return prepareFilled(name, scenario, env)
  const client = await createClient(name, env.tmpDir)
  const targetFor = targetMaker(scenario, env.origin)
  if (scenario.kind === 'miss') return { client, targetFor, sent: 0 }
  // what the scenario asks for, stored first: one URL, or each worker's own
  const storing = targetFor('fill')
  const urls = scenario.kind === 'revalidate' ? scenario.concurrency : 1
  for (let worker = 0; worker < urls; worker++) {
    const { url, expected } = storing(0, worker)
    await fetchOnce(client.dispatcher, url, expected)
  }
  return { client, targetFor, sent: urls }
}

/** Misses checked again after a miss scenario: a caching client must answer them without the origin. */
const CHECKED_MISSES = 20

/** Asks some of the measured miss URLs again (spread over the run): true when none reached the origin. */
async function missesWereStored(client: BenchClient, origin: string, target: Target, count: number) {
  const before = await readCounts(origin)
  const step = Math.max(1, Math.floor(count / CHECKED_MISSES))
  for (let index = count - 1; index >= 0; index -= step) {
    const { url, expected } = target(index, 0)
    if (!(await fetchOnce(client.dispatcher, url, expected))) return false
  }
  const after = await readCounts(origin)
  return after.requests === before.requests
}

/**
 * Why a caching client's origin traffic shows it did not cache as the scenario needs, if it did not.
 * `sent`: the requests the client sent before the miss check.
 */
function cachingProblem(
  scenario: Scenario,
  delta: OriginCounts,
  sent: number,
  missesStored: boolean,
): string | undefined {
  if (scenario.kind === 'hit' && delta.requests !== 1) {
    return `expected 1 origin request for ${scenario.path}, saw ${delta.requests}: the cache did not cache`
  }
  if (scenario.kind === 'fill' && delta.requests !== 0) {
    return `${delta.requests} hits on pre-filled entries went to the origin: the store lost entries`
  }
  const stored = scenario.kind === 'revalidate' ? scenario.concurrency : 0
  if (scenario.kind === 'revalidate' && (delta.requests !== sent || delta.notModified !== sent - stored)) {
    return `${delta.requests} origin requests (${delta.notModified} 304s) for ${sent} requests, ${stored} of them to store: not every request revalidated`
  }
  if (scenario.kind === 'miss' && !missesStored)
    return 'some missed responses were not stored: the cache did not cache'
  return undefined
}

/** Requests that failed (an error, another status, length or body): the measurement is not valid. */
function failureProblem(failed: number, sent: number): string | undefined {
  return failed === 0 ? undefined : `${failed} of ${sent} requests failed (error, status, length or body)`
}

function buildResult(
  name: ClientName,
  scenario: Scenario,
  measured: Measurement,
  delta: OriginCounts,
  problem: string | undefined,
): RunResult {
  const requests = measured.latenciesMs.length
  const result: RunResult = {
    client: name,
    scenario: scenario.id,
    concurrency: scenario.concurrency,
    requests,
    seconds: round(measured.seconds, 3),
    reqPerSec: Math.round(requests / measured.seconds),
    p50Ms: round(percentile(measured.latenciesMs, 0.5), 3),
    p99Ms: round(percentile(measured.latenciesMs, 0.99), 3),
    errors: measured.errors,
    originRequests: delta.requests,
    cacheOk: problem === undefined,
  }
  if (problem !== undefined) result.warning = problem
  return result
}

/**
 * A full run's hit measurement lasts at least MIN_HIT_RUN_MS: the request counts suit raw undici, but a
 * cache answers 1 500 hits of 64 KiB in 40–60 ms, a window of JIT tiers and GC pauses, not of the steady
 * rate. After the warm-up, one more batch gives the rate at which the count grows (to at most
 * MAX_HIT_REQUESTS) to fill the window. A 4 MiB hit (100 warm-up and 100–200 measured requests: 2–20 ms)
 * warms up for at least MIN_LARGE_HIT_WARMUP_MS (a cache's rate at c64 still rose for ~1 s: JIT tiers,
 * and SqliteStore's first hits wait on one read of the body file).
 */
const MIN_LARGE_HIT_WARMUP_MS = 800
const WARMUP_BATCH_MS = 50
/** Bounds the warm-up of a 4 MiB hit on a slow client (undici's cache: ~3 ms a hit). */
const MAX_WARMUP_BATCHES = 40
const MIN_HIT_RUN_MS = 300
const MAX_HIT_REQUESTS = 50_000

/** Measures one request-rate scenario (hit, miss, revalidate, fill). */
async function runRate(args: ClientArgs, scenario: Scenario, env: Environment): Promise<RunResult> {
  const before = await readCounts(env.origin)
  const { client, targetFor, sent: stored } = await prepare(args.client, scenario, env)
  const load = (count: number) => ({ ...scenario, count })
  const warmup = args.warmupRequests ?? (args.quick ? scenario.quickWarmupRequests : scenario.warmupRequests)
  let count = args.requests ?? (args.quick ? scenario.quickRequests : scenario.requests)
  const warmed = await sendRequests(client.dispatcher, load(warmup), targetFor('warmup'))
  const timed = scenario.kind === 'hit' && !args.quick && !args.requests
  if (timed) {
    const minMs = scenario.bodyBytes === SIZE_BYTES['4m'] ? MIN_LARGE_HIT_WARMUP_MS : 0
    const perMs = await warmedUpRate(client.dispatcher, scenario, warmed, warmup, targetFor('warmup'), minMs)
    count = Math.min(MAX_HIT_REQUESTS, Math.max(count, Math.ceil(perMs * MIN_HIT_RUN_MS)))
  }
  let measured = await sendRequests(client.dispatcher, load(count), targetFor('run'))
  // a rate still rising ends the window early: it goes on, in as many requests again
  while (
    timed &&
    measured.seconds * 1000 < MIN_HIT_RUN_MS &&
    measured.latenciesMs.length < MAX_HIT_REQUESTS
  ) {
    const more = await sendRequests(client.dispatcher, load(count), targetFor('run'))
    measured = joined(measured, more)
  }
  const delta = countsBetween(before, await readCounts(env.origin))
  const sent = stored + warmup + measured.latenciesMs.length
  const missesStored =
    scenario.kind === 'miss' &&
    client.caches &&
    (await missesWereStored(client, env.origin, targetFor('run'), count))
  await client.close()
  const problem =
    failureProblem(warmed.errors + measured.errors, warmup + measured.latenciesMs.length) ??
    (client.caches ? cachingProblem(scenario, delta, sent, missesStored) : undefined)
  return buildResult(args.client, scenario, measured, delta, problem)
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

async function main(): Promise<void> {
  const args = parseClientArgs(process.argv.slice(2))
  const env = await prepareEnvironment(args)
  for (const scenario of args.scenarios) {
    const result: RunResult | BigResult =
      scenario.kind === 'big' ? await runBig(args.client, scenario, env) : await runRate(args, scenario, env)
    if (result.warning)
      process.stderr.write(`WARNING ${result.client} ${result.scenario}: ${result.warning}\n`)
    process.stdout.write(`${JSON.stringify(result)}\n`)
  }
  process.exit(0)
}

await main()
