/** What the coalescing tests share: a first caller that leaves early while others wait on its request. */
import assert from 'node:assert/strict'
import { type Dispatcher, request } from 'undici'
import { type Reply, sleep } from '../helpers/client.js'

/**
 * A first caller for `url` that aborts ('gave up') 30 ms in, before a slow origin answers, while the
 * requests `waiters` makes wait on it; resolves once it is rejected, with their replies to come.
 */
export async function firstCallerLeaves(agent: Dispatcher, url: string, waiters: () => Promise<Reply>[]) {
  const controller = new AbortController()
  const leader = request(url, { dispatcher: agent, signal: controller.signal })
  await sleep(10)
  const waiting = waiters()
  setTimeout(() => controller.abort(new Error('gave up')), 20)
  await assert.rejects(leader, { message: 'gave up' })
  return { replies: Promise.all(waiting) }
}
