/**
 * The benchmark's origin server, run as its own process: a node:http server on 127.0.0.1.
 *
 *   node --import tsx bench/origin.ts [--port N]
 *
 * Listens on port N when free (a stable origin lets the runs reuse their pre-filled SQLite files),
 * else on any free port. Prints `{"port": N}` as one JSON line on stdout once listening; exits when
 * its parent goes away.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { exitWhenParentGone } from './process-guard.js'
import { BODY_BYTE, SIZE_BYTES } from './scenarios.js'

const FRESH = 'max-age=3600'
const ALWAYS_REVALIDATE = 'no-cache'
const BIG_PIECE_BYTES = 64 * 1024
const BIG_PATH = '/big'
const MISS_PREFIX = '/miss/'

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

function representation(
  kind: keyof typeof BODY_BYTE,
  size: keyof typeof SIZE_BYTES,
  cacheControl: string,
): Representation {
  return { body: Buffer.alloc(SIZE_BYTES[size], BODY_BYTE[kind]), etag: `"${kind}-${size}"`, cacheControl }
}

const FIXED_ROUTES = new Map<string, Representation>([
  ['/hit/1k', representation('hit', '1k', FRESH)],
  ['/hit/64k', representation('hit', '64k', FRESH)],
  ['/hit/4m', representation('hit', '4m', FRESH)],
  ['/revalidate/1k', representation('revalidate', '1k', ALWAYS_REVALIDATE)],
])

const MISS_REPRESENTATION = representation('miss', '1k', FRESH)

/** A 64 KiB piece of a recognisable pattern; a big body is this piece, repeated. */
function bigPiece(): Buffer {
  const piece = Buffer.alloc(BIG_PIECE_BYTES)
  for (let i = 0; i < piece.length; i++) piece[i] = (i * 31) % 251
  return piece
}

const BIG_PIECE = bigPiece()

function findRepresentation(pathname: string): Representation | undefined {
  if (pathname.startsWith(MISS_PREFIX)) return MISS_REPRESENTATION
  return FIXED_ROUTES.get(pathname)
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

/** Streams `bytes` bytes of BIG_PIECE (a multiple of its size), generated as sent, never whole. */
function sendBig(res: ServerResponse, bytes: number): void {
  res.writeHead(200, {
    'cache-control': FRESH,
    'content-length': bytes,
    'content-type': 'application/octet-stream',
    etag: `"big-${bytes}"`,
  })
  let sentBytes = 0
  const pump = () => {
    while (sentBytes < bytes) {
      sentBytes += BIG_PIECE.length
      if (!res.write(BIG_PIECE)) return void res.once('drain', pump)
    }
    res.end()
  }
  pump()
}

function sendNotFound(res: ServerResponse): void {
  res.writeHead(404, { 'cache-control': 'no-store' })
  res.end()
}

/** The size a `/big?bytes=N` request asks for, when it is a positive multiple of BIG_PIECE's. */
function bigBytes(url: URL): number | undefined {
  const bytes = Number(url.searchParams.get('bytes'))
  return Number.isSafeInteger(bytes) && bytes > 0 && bytes % BIG_PIECE.length === 0 ? bytes : undefined
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://origin')
  if (url.pathname === '/__count') {
    sendCounts(res)
    return
  }
  counts.requests++
  const bytes = url.pathname === BIG_PATH ? bigBytes(url) : undefined
  const found = findRepresentation(url.pathname)
  if (bytes !== undefined) sendBig(res, bytes)
  else if (found) sendRepresentation(req, res, found)
  else sendNotFound(res)
}

/** Listens on 127.0.0.1:`port`, or on a free port when `port` is taken. */
function listen(server: Server, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EADDRINUSE' || port === 0) return reject(error)
      server.listen(0, '127.0.0.1')
    }
    server.on('error', onError)
    server.once('listening', () => {
      server.off('error', onError)
      resolve(server.address() as AddressInfo)
    })
    server.listen(port, '127.0.0.1')
  })
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } })
  const server = createServer({ keepAliveTimeout: 60_000 }, handle)
  const { port } = await listen(server, Number(values.port))
  process.stdout.write(`${JSON.stringify({ port })}\n`)
  exitWhenParentGone()
}

await main()
