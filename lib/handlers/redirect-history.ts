/**
 * The URLs undici's redirect handler, composed inside the cache, has visited for this request, from
 * the context it hands to onRequestStart (it adds to the list as it follows redirects); undefined
 * without one.
 */
export function redirectHistory(context: unknown): readonly unknown[] | undefined {
  const history = (context as { history?: unknown } | undefined)?.history
  return Array.isArray(history) ? history : undefined
}
