/** Run as a separate process: stores one patterned body in a SqliteStore file, prints its sha256. */
import { createHash } from 'node:crypto'
import { SqliteStore } from '../../lib/stores/sqlite-store.js'
import { patternBody, sampleMeta, storeBody } from './helpers.js'

const [path, key, ...numbers] = process.argv.slice(2)
const [sizeBytes, seed, writeBytes, chunkBytes] = numbers.slice(0, 4).map(Number)
const bodyFiles = numbers[4] === 'true'
if (path === undefined || key === undefined || chunkBytes === undefined) {
  throw new Error(
    'usage: child-writer.ts <path> <key> <sizeBytes> <seed> <writeBytes> <chunkBytes> <bodyFiles>',
  )
}
const body = patternBody(sizeBytes as number, seed)
const store = new SqliteStore({ path, chunkBytes, bodyFiles })
await storeBody(store, key, sampleMeta({ varyKey: 'child' }), body, writeBytes)
store.close()
process.stdout.write(createHash('sha256').update(body).digest('hex'))
