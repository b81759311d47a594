/**
 * Freezes an object and every object in it, so entries handed to many hits stay as stored.
 * Buffers (byte views cannot be frozen) and functions are left as they are.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value) || Object.isFrozen(value)) {
    return value
  }
  Object.freeze(value)
  for (const inner of Object.values(value)) deepFreeze(inner)
  return value
}
