/** Callers for tests that share one download: one that stops reading or aborts, and one that reads it all. */
import { type Dispatcher, request } from 'undici'

export interface Outcome {
  body?: Buffer
  trailers?: Record<string, string>
  error?: Error
}

export interface StoppingCaller {
  /** Resolves once the caller has its chunks and has stopped reading (or aborted). */
  stopped: Promise<void>
  resume(): void
  /** Aborts the stopped caller (with the error 'caller gave up'). */
  abort(): void
  /** The whole body and the trailers, or the error the caller saw. */
  done: Promise<Outcome>
  receivedBytes(): number
}

/** A caller that takes `chunkCount` chunks, then pauses (or aborts) until told to go on. */
export function stoppingCaller(
  agent: Dispatcher,
  url: string,
  then: 'pause' | 'abort',
  chunkCount = 1,
): StoppingCaller {
  const { origin: at, pathname } = new URL(url)
  const chunks: Buffer[] = []
  let controller: Dispatcher.DispatchController | undefined
  let markStopped = () => {}
  const stopped = new Promise<void>((resolve) => {
    markStopped = resolve
  })
  const done = new Promise<Outcome>((resolve) => {
    agent.dispatch({ origin: at, path: pathname, method: 'GET', headers: {} }, {
      onRequestStart() {},
      onResponseData(c: Dispatcher.DispatchController, chunk: Buffer) {
        chunks.push(chunk)
        if (controller || chunks.length < chunkCount) return
        controller = c
        if (then === 'pause') c.pause()
        else c.abort(new Error('caller gave up'))
        markStopped()
      },
      onResponseEnd: (_c: unknown, trailers: Record<string, string>) =>
        resolve({ body: Buffer.concat(chunks), trailers }),
      onResponseError: (_c: unknown, error: Error) => resolve({ error }),
    } as Dispatcher.DispatchHandler)
  })
  return {
    stopped,
    resume: () => controller?.resume(),
    abort: () => controller?.abort(new Error('caller gave up')),
    done,
    receivedBytes: () => chunks.reduce((sum, chunk) => sum + chunk.length, 0),
  }
}

/** What the caller read in the end (nothing if it failed), waited for at most 5 s. */
export async function finalBody(caller: StoppingCaller, what: string): Promise<Buffer> {
  return (await within(5000, what, caller.done)).body ?? Buffer.alloc(0)
}

export async function readAll(agent: Dispatcher, url: string) {
  const res = await request(url, { dispatcher: agent })
  return { status: res.headers['cache-status'], body: Buffer.from(await res.body.arrayBuffer()) }
}

export function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}
