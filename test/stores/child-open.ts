/** Run as a separate process (maybe as another user): opens SqliteStores, prints what each call did. */
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { sampleMeta } from './helpers.js'

/** What one store on `path` did, as JSON for the parent. */
export interface OpenReport {
  path: string
  failure: string | undefined
  get: string
  put: string
}

const warnings: string[] = []
process.on('warning', (warning) =>
  warnings.push(`${(warning as { code?: string }).code}: ${warning.message}`),
)

/** The message a call threw, or 'ok'. */
function outcome(call: () => unknown): string {
  try {
    call()
    return 'ok'
  } catch (error) {
    return (error as Error).message
  }
}

const reports: OpenReport[] = process.argv.slice(2).map((path) => {
  const store = new SqliteStore({ path })
  const report = {
    path,
    failure: store.failure?.message,
    get: outcome(() => store.get('k')),
    put: outcome(() => store.put('k', sampleMeta())),
  }
  store.close()
  return report
})
await new Promise((resolve) => setImmediate(resolve))
process.stdout.write(JSON.stringify({ uid: process.getuid?.(), reports, warnings }))
