/** Option validation shared by the stores: wrong types throw TypeError, bad values RangeError. */

export type StoreOptions = Record<string, unknown>

/** How an integer option is checked and what it defaults to. */
export interface IntegerRule {
  defaultValue: number
  /** Smallest allowed value (inclusive). */
  min: number
  /** Largest allowed value (inclusive); default Number.MAX_SAFE_INTEGER. */
  max?: number
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

/**
 * The most a store's chunkBytes may be: a body shorter than it is held whole in memory while it is
 * written (a piece, a row, an inline body), so a larger value would buffer any body whole.
 */
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024

/** Reads an optional safe-integer option that must be >= `rule.min`. */
export function integerOption(
  storeName: string,
  options: StoreOptions,
  name: string,
  rule: IntegerRule,
): number {
  const value = options[name]
  if (value === undefined) return rule.defaultValue
  const max = rule.max ?? Number.MAX_SAFE_INTEGER
  const message = `${storeName} option ${name} must be ${expectedInteger(rule.min, max)} (${rule.unit}), got ${describe(value)}`
  if (typeof value !== 'number') throw new TypeError(message)
  if (!Number.isSafeInteger(value) || value < rule.min || value > max) throw new RangeError(message)
  return value
}

function expectedInteger(min: number, max: number): string {
  if (max !== Number.MAX_SAFE_INTEGER) return `an integer from ${min} to ${max}`
  return min === 1 ? 'a positive integer' : `an integer >= ${min}`
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

/** Reads an optional string option that must be one of `choices`. */
export function choiceOption<T extends string>(
  storeName: string,
  options: StoreOptions,
  name: string,
  choices: readonly T[],
  defaultValue: T,
): T {
  const value = options[name]
  if (value === undefined) return defaultValue
  if ((choices as readonly unknown[]).includes(value)) return value as T
  const expected = choices.map((choice) => JSON.stringify(choice)).join(' or ')
  const message = `${storeName} option ${name} must be ${expected}, got ${describe(value)}`
  throw typeof value === 'string' ? new RangeError(message) : new TypeError(message)
}

/** Reads an optional boolean option. */
export function booleanOption(
  storeName: string,
  options: StoreOptions,
  name: string,
  defaultValue: boolean,
): boolean {
  const value = options[name]
  if (value === undefined) return defaultValue
  if (typeof value === 'boolean') return value
  throw new TypeError(`${storeName} option ${name} must be true or false, got ${describe(value)}`)
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (typeof value === 'bigint') return `${value}n`
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}
