import { randomBytes } from 'node:crypto'
import { credentialTag } from '../credentials.js'
import { type Exchange, policyView } from '../exchange.js'
import { usefulUntilMs } from '../policy/lookup.js'
import { headersToStore } from '../policy/storable.js'
import type { Headers } from '../policy/types.js'
import { varyFieldNames, varyKey, varyValues } from '../policy/vary.js'
import type { EntryMeta } from '../stores/store.js'

/** The metadata kept for a response about to be stored (RFC 9111 §3, §4.1). */
export function entryMeta(
  exchange: Exchange,
  statusCode: number,
  headers: Headers,
  statusMessage: string,
): EntryMeta {
  const names = varyFieldNames(headers)
  const selecting = varyValues(names === '*' ? [] : names, exchange.request.headers)
  const view = policyView(exchange.config, { statusCode, headers })
  const meta: EntryMeta = {
    statusCode,
    statusMessage,
    headers: headersToStore(headers, exchange.config.shared, view.headers),
    requestTimeMs: exchange.requestTimeMs,
    responseTimeMs: Date.now(),
    varyValues: selecting,
    varyKey: varyKey(selecting),
    deleteAtMs: 0,
    sharedCache: exchange.config.shared ? true : undefined,
    authorized: authorizedBy(exchange),
    writeId: nextWriteId(),
  }
  meta.deleteAtMs = keptUntilMs(exchange, meta)
  return meta
}

/** This process's tag in write ids: 64 random bits, so that processes on other machines differ. */
const PROCESS_TAG = randomBytes(8).toString('base64url')
let writeCount = 0

/** An id no other response stored by any process has (EntryMeta.writeId). */
function nextWriteId(): string {
  writeCount += 1
  return `${PROCESS_TAG}.${writeCount}`
}

/**
 * When the entry has no use left (RFC 9111 §4.2, `usefulUntilMs`), or later for a request's `cache.ttl`,
 * which makes it fresh that long to the requests that give one.
 */
export function keptUntilMs(exchange: Exchange, meta: EntryMeta): number {
  const usefulMs = usefulUntilMs(policyView(exchange.config, meta), exchange.config.shared)
  const ttlSeconds = exchange.requestOptions?.ttl
  if (!ttlSeconds) return usefulMs
  const forcedMs = Math.ceil(meta.responseTimeMs + ttlSeconds * 1000)
  return Math.min(Number.MAX_SAFE_INTEGER, Math.max(usefulMs, forcedMs))
}

/** Set when a shared cache keeps a response to a request with Authorization (RFC 9111 §3.5): whose. */
export function authorizedBy(exchange: Exchange): string | undefined {
  return exchange.config.shared ? credentialTag(exchange.request.headers) : undefined
}
