/**
 * What undici calls on the handler it holds as the request goes out (the body's chunks, then the
 * request's end). The cache's handlers hand these on to the caller's, as undici's own interceptors do.
 */
export interface SendProgress {
  onBodySent?(...args: unknown[]): void
  onRequestSent?(): void
}

/** The caller's progress hooks, when it has any. */
export function progressOf(handler: object): SendProgress {
  return handler as SendProgress
}
