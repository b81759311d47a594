/** Sending the measured requests: one GET at a time per worker, at a given concurrency, timed. */
import { performance } from 'node:perf_hooks'
import { type Dispatcher, request } from 'undici'

export interface OriginCounts {
  requests: number
  notModified: number
}

export interface Measurement {
  seconds: number
  latenciesMs: Float64Array
  errors: number
}

/** The origin's request counters, read past every cache (through undici's global dispatcher). */
export async function readCounts(origin: string): Promise<OriginCounts> {
  const res = await request(`${origin}/__count`)
  return (await res.body.json()) as OriginCounts
}

/** What the origin counted between `before` and `after`. */
export function countsBetween(before: OriginCounts, after: OriginCounts): OriginCounts {
  return { requests: after.requests - before.requests, notModified: after.notModified - before.notModified }
}

/**
 * Sends one GET and reads its body to the end, chunk by chunk (not `arrayBuffer()`: undici copies a
 * body that came in one chunk byte by byte, ~3 ns/byte, which would bury what a cache does);
 * true when it answered 200 with the expected body size.
 */
export async function fetchOnce(dispatcher: Dispatcher, url: string, bodyBytes: number): Promise<boolean> {
  try {
    const res = await request(url, { dispatcher })
    let receivedBytes = 0
    for await (const chunk of res.body as AsyncIterable<Buffer>) receivedBytes += chunk.length
    return res.statusCode === 200 && receivedBytes === bodyBytes
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

/** Sends `count` GETs of `urlFor(0..count-1)`, `concurrency` at a time, timing each. */
export async function sendRequests(
  dispatcher: Dispatcher,
  load: { concurrency: number; bodyBytes: number; count: number },
  urlFor: (index: number) => string,
): Promise<Measurement> {
  const latenciesMs = new Float64Array(load.count)
  let errors = 0
  const startMs = performance.now()
  await runConcurrently(load.count, load.concurrency, async (index) => {
    const sentMs = performance.now()
    if (!(await fetchOnce(dispatcher, urlFor(index), load.bodyBytes))) errors++
    latenciesMs[index] = performance.now() - sentMs
  })
  return { seconds: (performance.now() - startMs) / 1000, latenciesMs, errors }
}
