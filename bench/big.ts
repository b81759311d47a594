/**
 * The `big` scenario, in a client process: one huge body the origin streams (never whole in memory),
 * downloaded while the process's RSS is sampled. A plain download through raw undici first grows the
 * heap to its working size, as any download does; what is measured next is what the client adds.
 */
import { performance } from 'node:perf_hooks'
import { Agent, type Dispatcher, request } from 'undici'
import { createClient } from './clients.js'
import { countsBetween, readCounts } from './load.js'
import {
  BIG_STORE_BYTES,
  type BigPhase,
  type BigResult,
  type ClientName,
  type Scenario,
} from './scenarios.js'
import { round } from './stats.js'

const RSS_SAMPLE_MS = 20
const MIB = 1024 * 1024
const BYTES_PER_MB = 1_000_000

interface Download {
  bytes: number
  seconds: number
  rssGrowthMiB: number
}

/** Downloads `url` whole, counting bytes, and samples the peak RSS growth over the RSS just before. */
async function download(dispatcher: Dispatcher, url: string): Promise<Download> {
  const baselineBytes = process.memoryUsage.rss()
  let peakBytes = baselineBytes
  const sample = () => {
    peakBytes = Math.max(peakBytes, process.memoryUsage.rss())
  }
  const timer = setInterval(sample, RSS_SAMPLE_MS)
  const startMs = performance.now()
  try {
    const res = await request(url, { dispatcher })
    let bytes = 0
    for await (const chunk of res.body as AsyncIterable<Buffer>) bytes += chunk.length
    sample()
    return {
      bytes,
      seconds: (performance.now() - startMs) / 1000,
      rssGrowthMiB: round((peakBytes - baselineBytes) / MIB, 1),
    }
  } finally {
    clearInterval(timer)
  }
}

/** One measured download, with the origin requests it caused. */
async function phase(
  name: BigPhase['phase'],
  dispatcher: Dispatcher,
  url: string,
  origin: string,
): Promise<BigPhase> {
  const before = await readCounts(origin)
  const measured = await download(dispatcher, url)
  const { requests } = countsBetween(before, await readCounts(origin))
  return {
    phase: name,
    bytes: measured.bytes,
    seconds: round(measured.seconds, 2),
    mbPerSec: Math.round(measured.bytes / measured.seconds / BYTES_PER_MB),
    rssGrowthMiB: measured.rssGrowthMiB,
    originRequests: requests,
  }
}

/** What went wrong, if anything: a short body, or a caching client that did not store then serve. */
function bigProblem(phases: readonly BigPhase[], bodyBytes: number, caches: boolean): string | undefined {
  const short = phases.find((measured) => measured.bytes !== bodyBytes)
  if (short) return `${short.phase} got ${short.bytes} of ${bodyBytes} bytes`
  const [store, serve] = phases
  if (caches && (store?.originRequests !== 1 || serve?.originRequests !== 0)) {
    return `origin requests: ${store?.originRequests} while storing, ${serve?.originRequests} while serving (expected 1 and 0): the cache did not cache`
  }
  return undefined
}

/** Runs `scenario` (kind `big`) for `clientName`: raw undici downloads; a caching client stores then serves. */
export async function runBig(
  clientName: ClientName,
  scenario: Scenario,
  env: { origin: string; tmpDir: string },
): Promise<BigResult> {
  const url = `${env.origin}${scenario.path}`
  const plain = new Agent()
  const warmup = await download(plain, url)
  const limits = { maxBytes: BIG_STORE_BYTES, maxEntryBytes: BIG_STORE_BYTES }
  const client = await createClient(clientName, env.tmpDir, { limits })
  const phases = client.caches
    ? [
        await phase('store', client.dispatcher, url, env.origin),
        await phase('serve', client.dispatcher, url, env.origin),
      ]
    : [await phase('download', client.dispatcher, url, env.origin)]
  await Promise.all([client.close(), plain.close()])
  const problem = bigProblem(phases, scenario.bodyBytes, client.caches)
  const result: BigResult = {
    client: clientName,
    scenario: scenario.id,
    bodyBytes: scenario.bodyBytes,
    warmupRssGrowthMiB: warmup.rssGrowthMiB,
    phases,
    cacheOk: problem === undefined,
  }
  if (problem !== undefined) result.warning = problem
  return result
}
