import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as policy from '../../lib/policy/index.js'

describe('policy entry point', () => {
  it('re-exports the public functions', () => {
    const expected = [
      'ageHeaderValue',
      'ageValueSeconds',
      'answersFromCache',
      'canStore',
      'conditionalHeaders',
      'contentLengthBytes',
      'contentRangeValue',
      'currentAgeSeconds',
      'decideReuse',
      'entityTagOf',
      'evaluateClientConditional',
      'evaluateRange',
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
      'isWeakTag',
      'listMembers',
      'notModifiedHeaders',
      'notModifiedMatches',
      'parseCacheControl',
      'parseHttpDate',
      'requestDirectives',
      'responseDirectives',
      'selectVariant',
      'singletonValue',
      'staleIfErrorAllows',
      'staleWhileRevalidateAllows',
      'strongMatch',
      'targetedView',
      'UNDERSTOOD_STATUSES',
      'usefulUntilMs',
      'variantMatches',
      'varyFieldNames',
      'varyKey',
      'varyValues',
      'weakMatch',
      'withoutClientConditionals',
    ]
    for (const name of expected) assert.ok(name in policy, name)
  })
})
