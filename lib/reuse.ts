/** What a request may be served of a stored response, and whether it may wait on another request's. */
import { keptForRequest } from './credentials.js'
import { type Exchange, policyView } from './exchange.js'
import {
  decideReuse,
  type ReuseDecision,
  staleIfErrorAllows,
  validatedForEachUse,
  wantsOwnAnswer,
} from './policy/lookup.js'
import type { EntryMeta } from './stores/store.js'

/**
 * The policy's decision for a stored response (an entry, what a 304 validated, one about to be
 * stored), or a forced lifetime from the request's `cache.ttl`, but for a response kept for other
 * credentials (RFC 9111 §3.5).
 */
export function decideFor(exchange: Exchange, stored: EntryMeta): ReuseDecision {
  const { config, request } = exchange
  const decision = decideReuse(request, policyView(config, stored), Date.now(), config.shared)
  const ttl = exchange.requestOptions?.ttl
  if (ttl === undefined || !keptForRequest(stored, request.headers)) return decision
  const ttlSeconds = ttl - decision.ageSeconds
  return { ...decision, lifetimeSeconds: ttl, ttlSeconds, action: ttlSeconds > 0 ? 'fresh' : 'revalidate' }
}

/** RFC 9111 §4: whether `stored` may answer the exchange's request without validation now. */
export function reusableFor(exchange: Exchange, stored: EntryMeta): boolean {
  return decideFor(exchange, stored).action !== 'revalidate'
}

/** RFC 5861 §4, asked for a waiter on a revalidation that failed: its own request may forbid it. */
export function staleIfErrorAllowsFor(exchange: Exchange, stored: EntryMeta): boolean {
  const { config, request } = exchange
  return staleIfErrorAllows(request, policyView(config, stored), Date.now(), config.shared)
}

/**
 * RFC 9111 §4: whether a flight's answer could serve this request. Not when it asks for the origin's
 * answer to itself, nor when it revalidates an entry that needs validation for each use (`no-cache`,
 * no freshness lifetime): it would wait, then ask the origin anyway.
 */
export function mayWaitOnFlight(exchange: Exchange, entry: EntryMeta | undefined): boolean {
  if (wantsOwnAnswer(exchange.request)) return false
  const { config } = exchange
  return entry === undefined || !validatedForEachUse(policyView(config, entry), config.shared)
}
