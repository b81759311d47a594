/**
 * The ceiling: a dispatcher that answers every request at once with a canned 200 from memory, without
 * any lookup or origin contact. It does the least work a cache hit can do, so no cache can beat it.
 */
import { Dispatcher } from 'undici'
import { isLegacyHandler, LegacyHandlerAdapter } from '../lib/handlers/legacy-handler.js'
import { BODY_BYTE, SIZE_BYTES } from './scenarios.js'

type SizeName = keyof typeof SIZE_BYTES

interface CannedResponse {
  headers: Record<string, string>
  body: Buffer
}

function canned(size: SizeName): CannedResponse {
  const bytes = SIZE_BYTES[size]
  return {
    headers: {
      'cache-control': 'max-age=3600',
      'content-length': String(bytes),
      'content-type': 'application/octet-stream',
      etag: `"canned-${size}"`,
    },
    // the origin's bytes for a hit: a client checks what it is served
    body: Buffer.alloc(bytes, BODY_BYTE.hit),
  }
}

const RESPONSES = new Map<string, CannedResponse>(
  (Object.keys(SIZE_BYTES) as SizeName[]).map((size) => [size, canned(size)]),
)

/** The canned response whose body size the path's last segment names (`/hit/64k` → 64 KiB), else 1 KiB. */
function responseFor(path: string): CannedResponse {
  const pathname = path.split('?', 1)[0] ?? ''
  const size = pathname.slice(pathname.lastIndexOf('/') + 1)
  return RESPONSES.get(size) ?? (RESPONSES.get('1k') as CannedResponse)
}

/** The least a DispatchController can be: it records pause, resume and abort. */
class CannedController implements Dispatcher.DispatchController {
  #paused = false
  #reason: Error | null = null
  #onResume: (() => void) | undefined

  get aborted(): boolean {
    return this.#reason !== null
  }

  get paused(): boolean {
    return this.#paused
  }

  get reason(): Error | null {
    return this.#reason
  }

  pause(): void {
    this.#paused = true
  }

  resume(): void {
    this.#paused = false
    const onResume = this.#onResume
    this.#onResume = undefined
    onResume?.()
  }

  abort(reason: Error): void {
    this.#reason ??= reason
  }

  /** Runs `step` now, or once resumed when the handler paused. */
  whenFlowing(step: () => void): void {
    if (this.#paused) this.#onResume = step
    else step()
  }
}

/** Plays `response` to `handler`: start, headers, the body in one chunk, end. */
function answer(handler: Dispatcher.DispatchHandler, response: CannedResponse): void {
  const controller = new CannedController()
  handler.onRequestStart?.(controller, {})
  if (controller.aborted) return
  handler.onResponseStart?.(controller, 200, { ...response.headers }, 'OK')
  if (controller.aborted) return
  handler.onResponseData?.(controller, response.body)
  controller.whenFlowing(() => {
    if (!controller.aborted) handler.onResponseEnd?.(controller, {})
  })
}

/**
 * The ceiling as a dispatcher, as a CacheAgent is one: an old-API handler (request(), fetch()) gets its
 * field lines through the same adapter as in a CacheAgent, so the two differ only by what a hit does.
 */
export class CeilingAgent extends Dispatcher {
  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    answer(isLegacyHandler(handler) ? new LegacyHandlerAdapter(handler) : handler, responseFor(opts.path))
    return true
  }

  override close(): Promise<void>
  override close(callback: () => void): void
  override close(callback?: () => void): Promise<void> | undefined {
    if (!callback) return Promise.resolve()
    queueMicrotask(callback)
    return undefined
  }
}
