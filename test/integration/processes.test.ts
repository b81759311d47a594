import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { promisify } from 'node:util'
import { tempDir } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

const run = promisify(execFile)
const fixture = path.join(import.meta.dirname, '..', 'fixtures', 'fetch-once.ts')

let origin: Origin
before(async () => {
  origin = await startOrigin((req, res) =>
    reply(res, 200, { 'cache-control': 'max-age=60' }, `shared ${req.url}`),
  )
})
after(() => origin.close())

async function fetchInChild(dbPath: string, url: string) {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', fixture, dbPath, url])
  return JSON.parse(stdout) as { status: number; cacheStatus: string; body: string }
}

test('two processes share one SQLite file: the second is served what the first stored', async () => {
  const dbPath = path.join(tempDir(), 'shared.db')
  const first = await fetchInChild(dbPath, `${origin.url}/persisted`)
  const second = await fetchInChild(dbPath, `${origin.url}/persisted`)
  assert.deepEqual(first, {
    status: 200,
    cacheStatus: 'undici-cache; fwd=miss; stored',
    body: 'shared /persisted',
  })
  assert.equal(second.body, 'shared /persisted')
  assert.match(second.cacheStatus, /^undici-cache; hit; ttl=[1-6][0-9]$/)
  assert.equal(origin.count('/persisted'), 1)
})
