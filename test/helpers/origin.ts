import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface SeenRequest {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
}

export type Route = (req: http.IncomingMessage, res: http.ServerResponse, seen: SeenRequest) => void

/** A real node:http origin on 127.0.0.1 that records every request that reaches it. */
export interface Origin {
  /** e.g. http://127.0.0.1:12345 */
  url: string
  requests: SeenRequest[]
  /** How many requests reached the origin, optionally for one path. */
  count(path?: string): number
  close(): Promise<void>
}

export async function startOrigin(route: Route): Promise<Origin> {
  const requests: SeenRequest[] = []
  const server = http.createServer((req, res) => {
    const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers }
    requests.push(seen)
    route(req, res, seen)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    count: (path) => requests.filter((r) => path === undefined || r.url === path).length,
    close: async () => {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    },
  }
}

/** Replies with a fixed body and headers. */
export function reply(
  res: http.ServerResponse,
  status: number,
  headers: Record<string, string | string[]>,
  body = '',
) {
  res.writeHead(status, headers)
  res.end(body)
}

/**
 * A Date two minutes ago: with `max-age=60`, a response stale on arrival that still has a freshness
 * lifetime, which a 304 (dated now by node:http) renews. Requests revalidating it may wait on one
 * another; one that must be validated for each use (`no-cache`, `max-age=0`) serves no request but
 * its own (RFC 9111 §4).
 */
export function twoMinutesAgo(): string {
  return new Date(Date.now() - 120_000).toUTCString()
}
