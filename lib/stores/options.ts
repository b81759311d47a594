/** Option validation shared by the stores: wrong types throw TypeError, bad values RangeError. */

export type StoreOptions = Record<string, unknown>

/** How an integer option is checked and what it defaults to. */
export interface IntegerRule {
  defaultValue: number
  /** Smallest allowed value (inclusive). */
  min: number
  /** Unit shown in error messages, e.g. 'bytes'. */
  unit: string
}

/** Returns `options` as a record after checking it is an object whose keys are all in `knownKeys`. */
export function checkOptionKeys(
  storeName: string,
  options: unknown,
  knownKeys: readonly string[],
): StoreOptions {
  if (options === undefined) return {}
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`${storeName} options must be an object, got ${describe(options)}`)
  }
  for (const key of Object.keys(options)) {
    if (!knownKeys.includes(key)) {
      throw new TypeError(`${storeName} has no option ${key} (known: ${knownKeys.join(', ')})`)
    }
  }
  return options as StoreOptions
}

/** Reads an optional safe-integer option that must be >= `rule.min`. */
export function integerOption(
  storeName: string,
  options: StoreOptions,
  name: string,
  rule: IntegerRule,
): number {
  const value = options[name]
  if (value === undefined) return rule.defaultValue
  const expected = rule.min === 1 ? 'a positive integer' : `an integer >= ${rule.min}`
  const message = `${storeName} option ${name} must be ${expected} (${rule.unit}), got ${describe(value)}`
  if (typeof value !== 'number') throw new TypeError(message)
  if (!Number.isSafeInteger(value) || value < rule.min) throw new RangeError(message)
  return value
}

/** Reads an optional non-empty string option. */
export function stringOption(
  storeName: string,
  options: StoreOptions,
  name: string,
  defaultValue: string,
): string {
  const value = options[name]
  if (value === undefined) return defaultValue
  const message = `${storeName} option ${name} must be a non-empty string, got ${describe(value)}`
  if (typeof value !== 'string') throw new TypeError(message)
  if (value === '') throw new RangeError(message)
  return value
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (typeof value === 'bigint') return `${value}n`
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}
