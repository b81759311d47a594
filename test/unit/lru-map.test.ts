import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { LruMap } from '../../lib/stores/lru-map.js'

type Step =
  | { op: 'set'; key: number; value: number }
  | { op: 'touch' | 'delete' | 'get'; key: number }
  | { op: 'clear' }

const key = fc.integer({ min: 0, max: 7 })
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), key, value: fc.integer() }),
  fc.record({ op: fc.constantFrom('touch' as const, 'delete' as const, 'get' as const), key }),
  fc.record({ op: fc.constant('clear' as const) }),
)

test('LruMap behaves like a list kept oldest first, at most maxKeys long (model check)', () => {
  fc.assert(
    fc.property(fc.array(step, { maxLength: 60 }), fc.constantFrom(undefined, 1, 3), (steps, maxKeys) => {
      const lru = new LruMap<number, number>(maxKeys)
      let model: [number, number][] = []
      const without = (k: number) => model.filter(([modelKey]) => modelKey !== k)
      for (const s of steps) {
        if (s.op === 'set') {
          lru.set(s.key, s.value)
          const added: [number, number][] = [...without(s.key), [s.key, s.value]]
          model = maxKeys === undefined ? added : added.slice(-maxKeys)
        } else if (s.op === 'touch') {
          const found = model.find(([modelKey]) => modelKey === s.key)
          assert.equal(lru.touch(s.key), found !== undefined)
          if (found) model = [...without(s.key), found]
        } else if (s.op === 'delete') {
          assert.equal(lru.delete(s.key), model.length !== without(s.key).length)
          model = without(s.key)
        } else if (s.op === 'get') {
          assert.equal(lru.get(s.key), model.find(([modelKey]) => modelKey === s.key)?.[1])
        } else {
          lru.clear()
          model = []
        }
        assert.equal(lru.size, model.length)
        assert.equal(lru.oldestKey(), model[0]?.[0])
      }
      const drained: number[] = []
      for (let oldest = lru.oldestKey(); oldest !== undefined; oldest = lru.oldestKey()) {
        drained.push(oldest)
        lru.delete(oldest)
      }
      assert.deepEqual(
        drained,
        model.map(([modelKey]) => modelKey),
      )
    }),
    { numRuns: 500 },
  )
})
