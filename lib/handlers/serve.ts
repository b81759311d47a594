import type { Dispatcher } from 'undici'
import type { StoredEntry } from '../stores/store.js'
import { BodyPump } from './body-pump.js'
import type { RelayController } from './relay-controller.js'
import type { OutgoingHeaders } from './response-headers.js'

export interface ServedResponse {
  statusCode: number
  statusMessage: string
  headers: OutgoingHeaders
  /** Undefined for a response without a body (HEAD, synthesized errors). */
  body?: Iterable<Buffer> | AsyncIterable<Buffer>
}

/** The stored body as chunks: the one-piece fast path when the store has it. */
export function entryBody(entry: StoredEntry): Iterable<Buffer> | AsyncIterable<Buffer> {
  if (entry.body) return entry.body.length === 0 ? [] : [entry.body]
  return entry.readBody()
}

/** Answers a caller from the cache (hits, freshened 304s, synthesized 504s). */
export function serve(
  downstream: Dispatcher.DispatchHandler,
  relay: RelayController,
  response: ServedResponse,
): void {
  const pump = new BodyPump(response.body ?? [], downstream, relay)
  relay.setSource(pump)
  try {
    relay.start(downstream, {})
    if (relay.aborted) return
    downstream.onResponseStart?.(relay, response.statusCode, response.headers, response.statusMessage)
  } catch (error) {
    pump.abort(error instanceof Error ? error : new Error(String(error)))
    return
  }
  if (!relay.aborted) pump.run()
}
