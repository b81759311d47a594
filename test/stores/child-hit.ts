/**
 * Looks a key up in a SqliteStore (a hit records a use of its entry) and ends the process at once,
 * without close(): by running out of work (`end`) or with process.exit() (`exit`).
 * Usage: child-hit.ts PATH HOW KEY
 */
import { SqliteStore } from '../../lib/stores/sqlite-store.js'

const [path, how, key] = process.argv.slice(2)
const store = new SqliteStore({ path: path as string, sweepIntervalMs: 0, hotBytes: 0 })
if (store.get(key as string).length !== 1) throw new Error(`no entry under ${key}`)
if (how === 'exit') process.exit(0)
