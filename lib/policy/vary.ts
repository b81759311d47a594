import { dateValueMs } from './age.js'
import { fieldLines, listMembers } from './headers.js'
import type { Headers } from './types.js'

/** A stored variant as far as selection needs it. */
export interface VariantCandidate {
  varyValues: Record<string, string | null>
  headers: Headers
  responseTimeMs: number
}

/** The Vary field names, lower-case, deduplicated and sorted; '*' when any member is '*' (RFC 9110 §12.5.5). */
export function varyFieldNames(headers: Headers): string[] | '*' {
  const names = listMembers(headers, 'vary').map((name) => name.toLowerCase())
  if (names.includes('*')) return '*'
  return [...new Set(names)].sort()
}

// RFC 9111 §4.1: selecting values may be normalised by combining lines and normalising whitespace
function normalisedValue(requestHeaders: Headers, name: string): string | null {
  const lines = fieldLines(requestHeaders, name)
  if (lines.length === 0) return null
  return lines.join(', ').replace(/\s+/g, ' ').trim()
}

/** The normalised request values of the selecting fields (null = absent), keyed by lower-case name. */
export function varyValues(fieldNames: string[], requestHeaders: Headers): Record<string, string | null> {
  return Object.fromEntries(
    fieldNames.map((name) => name.toLowerCase()).map((name) => [name, normalisedValue(requestHeaders, name)]),
  )
}

/** A canonical string for a set of selecting values: '' without Vary, else JSON of sorted pairs. */
export function varyKey(values: Record<string, string | null>): string {
  // Object keys are unique, so two names never compare equal
  const pairs = Object.entries(values).sort(([a], [b]) => (a < b ? -1 : 1))
  return pairs.length === 0 ? '' : JSON.stringify(pairs)
}

// RFC 9111 §4.1: every selecting field of the stored request matches the new request (absent = absent)
export function variantMatches(
  stored: { varyValues: Record<string, string | null> },
  requestHeaders: Headers,
): boolean {
  return Object.entries(stored.varyValues).every(
    ([name, value]) => normalisedValue(requestHeaders, name) === value,
  )
}

/** Recency of a variant: its Date (or response time), then its response time as the tie-break. */
function isMoreRecent(candidate: VariantCandidate, best: VariantCandidate): boolean {
  const candidateDateMs = dateValueMs(candidate.headers, candidate.responseTimeMs)
  const bestDateMs = dateValueMs(best.headers, best.responseTimeMs)
  if (candidateDateMs !== bestDateMs) return candidateDateMs > bestDateMs
  return candidate.responseTimeMs > best.responseTimeMs
}

// RFC 9111 §4.1: of several matching stored responses, use the most recent one
export function selectVariant<T extends VariantCandidate>(
  entries: T[],
  requestHeaders: Headers,
): T | undefined {
  let selected: T | undefined
  for (const entry of entries) {
    if (!variantMatches(entry, requestHeaders)) continue
    if (selected === undefined || isMoreRecent(entry, selected)) selected = entry
  }
  return selected
}
