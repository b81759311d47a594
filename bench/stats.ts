/** Small statistics helpers; every input is a plain list of numbers. */

/** The nearest-rank percentile (0 < fraction <= 1) of `values`, or NaN when empty. */
export function percentile(values: ArrayLike<number>, fraction: number): number {
  const sorted = Float64Array.from(values).sort()
  if (sorted.length === 0) return Number.NaN
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(fraction * sorted.length)))
  return sorted[rank - 1] ?? Number.NaN
}

/** The middle value of `values` (the mean of the two middle ones for an even count), or NaN when empty. */
export function median(values: ArrayLike<number>): number {
  const sorted = Float64Array.from(values).sort()
  const middle = sorted.length >> 1
  if (sorted.length % 2 === 1) return sorted[middle] as number
  if (sorted.length === 0) return Number.NaN
  return ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

/** `value` rounded to `digits` decimals. */
export function round(value: number, digits: number): number {
  const scale = 10 ** digits
  return Math.round(value * scale) / scale
}
