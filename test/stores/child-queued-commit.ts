/**
 * Queues commits in a SqliteStore and ends the process before the queue's delay has passed, either by
 * running out of work (`end`) or with process.exit() (`exit`). Usage: child-queued-commit.ts PATH HOW N
 */
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { patternBody, sampleMeta } from './helpers.js'

const [path, how, count] = process.argv.slice(2)
const store = new SqliteStore({ path: path as string, sweepIntervalMs: 0 })
for (let i = 0; i < Number(count); i++) {
  const writer = store.put(`k${i}`, sampleMeta())
  writer?.write(patternBody(100, i))
  await writer?.commitSoon?.()
}
if (how === 'exit') process.exit(0)
