import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as policy from '../../lib/policy/index.js'

describe('policy entry point', () => {
  it('re-exports the public functions', () => {
    const expected = [
      'ageHeaderValue',
      'ageValueSeconds',
      'canStore',
      'conditionalHeaders',
      'currentAgeSeconds',
      'decideReuse',
      'fieldLines',
      'formatCacheStatus',
      'formatHttpDate',
      'freshenedHeaders',
      'freshnessLifetimeSeconds',
      'hasExplicitExpiration',
      'hasValidator',
      'headersToStore',
      'HEURISTICALLY_CACHEABLE_STATUSES',
      'invalidatesOnResponse',
      'invalidationTargets',
      'isClientConditional',
      'isSafeMethod',
      'listMembers',
      'notModifiedMatches',
      'parseCacheControl',
      'parseHttpDate',
      'requestDirectives',
      'responseDirectives',
      'selectVariant',
      'singletonValue',
      'staleIfErrorAllows',
      'staleWhileRevalidateAllows',
      'UNDERSTOOD_STATUSES',
      'usefulUntilMs',
      'variantMatches',
      'varyFieldNames',
      'varyKey',
      'varyValues',
    ]
    for (const name of expected) assert.ok(name in policy, name)
  })
})
