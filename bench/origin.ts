/**
 * The benchmark's origin server, run as its own process: a node:http server on 127.0.0.1, port 0.
 * Prints `{"port": N}` as one JSON line on stdout once listening; exits when its parent goes away.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exitWhenParentGone } from './process-guard.js'

const KIB = 1024
const BODY_1K = Buffer.alloc(KIB, 'a')
const BODY_64K = Buffer.alloc(64 * KIB, 'b')
const FRESH = 'max-age=3600'
const ALWAYS_REVALIDATE = 'no-cache'

interface Counts {
  /** Requests served, `/__count` excluded. */
  requests: number
  /** Requests answered 304 Not Modified. */
  notModified: number
}

interface Representation {
  body: Buffer
  etag: string
  cacheControl: string
}

const counts: Counts = { requests: 0, notModified: 0 }

const FIXED_ROUTES = new Map<string, Representation>([
  ['/hit/1k', { body: BODY_1K, etag: '"hit-1k"', cacheControl: FRESH }],
  ['/hit/64k', { body: BODY_64K, etag: '"hit-64k"', cacheControl: FRESH }],
  ['/revalidate/1k', { body: BODY_1K, etag: '"revalidate-1k"', cacheControl: ALWAYS_REVALIDATE }],
])

const MISS_PREFIX = '/miss/'
const MISS_REPRESENTATION: Representation = { body: BODY_1K, etag: '"miss-1k"', cacheControl: FRESH }

function findRepresentation(path: string): Representation | undefined {
  if (path.startsWith(MISS_PREFIX)) return MISS_REPRESENTATION
  return FIXED_ROUTES.get(path)
}

function sendCounts(res: ServerResponse): void {
  const body = JSON.stringify(counts)
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
  res.end(body)
}

function sendRepresentation(req: IncomingMessage, res: ServerResponse, representation: Representation): void {
  const validators = { etag: representation.etag, 'cache-control': representation.cacheControl }
  if (req.headers['if-none-match'] === representation.etag) {
    counts.notModified++
    res.writeHead(304, validators)
    res.end()
    return
  }
  res.writeHead(200, {
    ...validators,
    'content-type': 'application/octet-stream',
    'content-length': representation.body.length,
  })
  res.end(representation.body)
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const path = req.url ?? '/'
  if (path === '/__count') {
    sendCounts(res)
    return
  }
  counts.requests++
  const representation = findRepresentation(path)
  if (!representation) {
    res.writeHead(404, { 'cache-control': 'no-store' })
    res.end()
    return
  }
  sendRepresentation(req, res, representation)
}

function main(): void {
  const server = createServer({ keepAliveTimeout: 60_000 }, handle)
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo
    process.stdout.write(`${JSON.stringify({ port })}\n`)
  })
  exitWhenParentGone()
}

main()
