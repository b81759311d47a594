import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { tempDir } from '../helpers/client.js'
import { type Origin, reply, startOrigin } from '../helpers/origin.js'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc')

/** Two GETs through a CacheAgent of the installed package, as a consumer would write them. */
const CONSUMER_CJS = `
const { CacheAgent, MemoryStore } = require('undici-cache')
const { parseCacheControl } = require('undici-cache/policy')
const { request } = require('undici')
async function main() {
  const agent = new CacheAgent({ store: new MemoryStore() })
  const statuses = []
  for (let i = 0; i < 2; i++) {
    const res = await request(process.argv[2], { dispatcher: agent })
    statuses.push([res.headers['cache-status'].replace(/ttl=\\d+/, 'ttl'), await res.body.text()])
  }
  await agent.close()
  console.log(JSON.stringify({ statuses, maxAge: parseCacheControl('max-age=60').maxAgeSeconds }))
}
main()
`

const CONSUMER_ESM = CONSUMER_CJS.replace(/const \{ (.+) \} = require\('(.+)'\)/g, "import { $1 } from '$2'")

let origin: Origin
let consumer: string

before(async () => {
  origin = await startOrigin((_req, res) => reply(res, 200, { 'cache-control': 'max-age=60' }, 'packaged'))
  // the package as npm installs it: package.json and the built dist/, next to its dependencies
  const installed = tempDir()
  await run(process.execPath, [
    TSC,
    ...['-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(installed, 'dist')],
    ...['--sourceMap', 'false', '--declaration', 'false'],
  ])
  cpSync(join(ROOT, 'package.json'), join(installed, 'package.json'))
  symlinkSync(join(ROOT, 'node_modules'), join(installed, 'node_modules'))
  consumer = tempDir()
  mkdirSync(join(consumer, 'node_modules'))
  symlinkSync(installed, join(consumer, 'node_modules', 'undici-cache'))
  symlinkSync(join(ROOT, 'node_modules', 'undici'), join(consumer, 'node_modules', 'undici'))
  writeFileSync(join(consumer, 'main.cjs'), CONSUMER_CJS)
  writeFileSync(join(consumer, 'main.mjs'), CONSUMER_ESM)
})
after(() => origin.close())

for (const file of ['main.cjs', 'main.mjs']) {
  test(`the built package works from ${file === 'main.cjs' ? 'require()' : 'import'}`, async () => {
    const before = origin.count()
    const { stdout } = await run(process.execPath, [join(consumer, file), `${origin.url}/p`], {
      cwd: consumer,
    })
    assert.deepEqual(JSON.parse(stdout), {
      statuses: [
        ['undici-cache; fwd=miss; stored', 'packaged'],
        ['undici-cache; hit; ttl', 'packaged'],
      ],
      maxAge: 60,
    })
    assert.equal(origin.count() - before, 1)
  })
}
