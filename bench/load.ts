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

/** What a response must be: its body's length, and the bytes it starts with (which representation it is). */
export interface Expected {
  bodyBytes: number
  prefix: Buffer
}

/**
 * Sends one GET and reads its body to the end, chunk by chunk (not `arrayBuffer()`: undici copies a
 * body that came in one chunk byte by byte, ~3 ns/byte, which would bury what a cache does);
 * true when it answered 200 with a body of the expected size that starts with the expected bytes.
 */
export async function fetchOnce(dispatcher: Dispatcher, url: string, expected: Expected): Promise<boolean> {
  try {
    const res = await request(url, { dispatcher })
    let receivedBytes = 0
    let starts = true
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (receivedBytes < expected.prefix.length) starts &&= startsAs(chunk, expected.prefix, receivedBytes)
      receivedBytes += chunk.length
    }
    return res.statusCode === 200 && receivedBytes === expected.bodyBytes && starts
  } catch {
    return false
  }
}

/** Whether `chunk`, found at `offset` of a body, holds what `prefix` has there. */
function startsAs(chunk: Buffer, prefix: Buffer, offset: number): boolean {
  const length = Math.min(chunk.length, prefix.length - offset)
  return chunk.subarray(0, length).equals(prefix.subarray(offset, offset + length))
}

/** Calls `task(0..count-1, worker)`, at most `concurrency` at a time, each worker one after another. */
async function runConcurrently(
  count: number,
  concurrency: number,
  task: (index: number, worker: number) => Promise<void>,
): Promise<void> {
  let next = 0
  const worker = async (id: number) => {
    while (next < count) await task(next++, id)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, (_, id) => worker(id)))
}

/** The URL and expected response of request `index`, sent by `worker` (0..concurrency-1). */
export type Target = (index: number, worker: number) => { url: string; expected: Expected }

/** Sends `count` GETs of `targetOf(0..count-1)`, `concurrency` at a time, timing each. */
export async function sendRequests(
  dispatcher: Dispatcher,
  load: { concurrency: number; count: number },
  targetOf: Target,
): Promise<Measurement> {
  const latenciesMs = new Float64Array(load.count)
  let errors = 0
  const startMs = performance.now()
  await runConcurrently(load.count, load.concurrency, async (index, worker) => {
    const { url, expected } = targetOf(index, worker)
    const sentMs = performance.now()
    if (!(await fetchOnce(dispatcher, url, expected))) errors++
    latenciesMs[index] = performance.now() - sentMs
  })
  return { seconds: (performance.now() - startMs) / 1000, latenciesMs, errors }
}
