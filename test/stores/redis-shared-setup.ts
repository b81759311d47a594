/**
 * What the RedisStore suites of redis-shared, redis-down and redis-stall share: the skip reason, key
 * prefixes, the origin their CacheAgents ask (each suite starts and stops its own), waiting for a condition.
 */
import { after, before } from 'node:test'
import { sleep } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'
import { patternBody } from './helpers.js'
import { type RedisServer, redisSkipReason, startRedisServer } from './redis-server.js'

export const skipReason = redisSkipReason()
export const LARGE_BODY = patternBody(100_000, 7).toString('base64')

let prefixes = 0
/** A key prefix no other test of this process uses. */
export const freshPrefix = () => `shared:${prefixes++}:`

/** The suites' origin: `/large` answers LARGE_BODY, any other path `body of <path>`; all max-age=60. */
export function startSharedOrigin(): Promise<Origin> {
  return startOrigin((req, res) => {
    const body = req.url === '/large' ? LARGE_BODY : `body of ${req.url}`
    reply(res, 200, { 'cache-control': 'max-age=60' }, body)
  })
}

/** Polls `condition` every 10 ms until it holds; fails after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await sleep(10)
  }
}

/** Starts a Redis server and the origin before the suite's tests (handed to `started`), stops them after. */
export function startForSuite(started: (redis: RedisServer, origin: Origin) => void): void {
  let redis: RedisServer | undefined
  let origin: Origin | undefined
  before(async () => {
    redis = await startRedisServer()
    origin = await startSharedOrigin()
    started(redis, origin)
  })
  after(async () => {
    await origin?.close()
    await redis?.stop()
  })
}
