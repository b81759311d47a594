/** Why a request went to the origin, as Cache-Status says it (RFC 9211 §2.2). */
import type { ForwardReason } from './policy/cache-status.js'
import type { ReuseDecision } from './policy/lookup.js'

/** Reuse refusals that come from the request's own directives. */
const REQUEST_REASONS: ReadonlySet<string> = new Set(['request-no-cache', 'request-max-age', 'min-fresh'])

/** RFC 9211 §2.2: `request` when a fresh response was bypassed for the request's directives. */
export function forwardReason(decision: ReuseDecision): ForwardReason {
  const byRequest = REQUEST_REASONS.has(decision.reason) && decision.ttlSeconds > 0
  return byRequest ? 'request' : 'stale'
}

/**
 * RFC 9211 §2.2 for a request whose preconditions only the origin evaluates (If-Match,
 * If-Unmodified-Since, RFC 9111 §4.3.2): what the lookup found, though nothing stored could answer it.
 * `decision` is that of the selected response, undefined when none was selected.
 */
export function originOnlyReason(storedCount: number, decision: ReuseDecision | undefined): ForwardReason {
  if (decision === undefined) return storedCount === 0 ? 'miss' : 'vary-miss'
  return decision.action === 'revalidate' ? forwardReason(decision) : 'request'
}
