import type { Dispatcher } from 'undici'
import { reportStoreError } from '../diagnostics.js'
import { cacheStatusValue, type Exchange, policyView, quietly } from '../exchange.js'
import type { Flight } from '../flights.js'
import { freshenFromHead } from '../freshen.js'
import { ownRequestOptions } from '../own-request.js'
import type { ForwardReason } from '../policy/cache-status.js'
import { strongEntityTagOf } from '../policy/entity-tag.js'
import { contentLengthBytes } from '../policy/headers.js'
import { isWorthStoring } from '../policy/lookup.js'
import { canStore } from '../policy/storable.js'
import type { Headers } from '../policy/types.js'
import {
  type EntryMeta,
  type EntryWriter,
  type MaybePromise,
  type StoredEntry,
  withEntries,
} from '../stores/store.js'
import { BodyDigest } from './body-digest.js'
import type { Ending, StoredCopy } from './catch-up.js'
import { type CallerExit, DownloadPace } from './download-pace.js'
import { entryMeta } from './entry-meta.js'
import { FanOut, type LiveWaiter } from './fan-out.js'
import { ReaderStream } from './reader-stream.js'
import { redirectHistory } from './redirect-history.js'
import type { RelayController } from './relay-controller.js'
import { dated, forwardedHeaders } from './response-headers.js'
import { checkedRestFetcher, type RestFetch, restFetcher } from './rest-from-origin.js'
import { progressOf } from './send-progress.js'
import { tellError } from './tell-error.js'

const UNREAD = 'undici-cache: nobody reads this shared download any more'

type Opened =
  | { writer: EntryWriter; meta: EntryMeta; detail?: undefined }
  | { writer?: undefined; meta?: undefined; detail: string }

export interface ForwardOptions {
  /** Why the request went to the origin (RFC 9211 `fwd`). */
  fwd: ForwardReason
  /** The flight this request leads: settled once the entry is stored, or known not to be. */
  flight?: Flight
  /** The dispatcher the request went to: readers that fell behind may ask it again for the rest. */
  next: Dispatcher.Dispatch
  /** The store gave up on the body as too large (no Content-Length), known once it has ended. */
  onRefused?: () => void
}

/**
 * Forwards a request to the origin and tees a storable response into the store while it
 * streams to the caller. The caller sets the pace while nobody else waits on the download; the
 * entry is committed before the caller sees the end, and dropped if the response fails or is aborted.
 */
export class ForwardHandler implements Dispatcher.DispatchHandler, CallerExit {
  readonly #exchange: Exchange
  /** The caller, until it leaves early (callerLeaves). */
  #downstream: Dispatcher.DispatchHandler
  readonly #relay: RelayController
  readonly #fwd: ForwardReason
  readonly #flight: Flight | undefined
  readonly #next: Dispatcher.Dispatch
  readonly #onRefused: (() => void) | undefined
  /** The response's headers, kept while others may share it: a strong ETag lets the origin resend its rest. */
  #sharedHeaders: Headers | undefined
  /** Made when first needed; null when the response cannot be asked for again. */
  #restFetch: RestFetch | null | undefined
  /** The body's check value from the first byte, when others may share it and there is no strong ETag. */
  #digest: BodyDigest | undefined
  /** Bytes handed to the caller while it read the origin directly. */
  #deliveredBytes = 0
  #writer: EntryWriter | undefined
  #meta: EntryMeta | undefined
  #fanOut: FanOut | undefined
  /** The caller's own reader, when others may share the download (a flight that stores). */
  #reader: ReaderStream | undefined
  #pace: DownloadPace | undefined
  /** The length the response declared: the store refused it at once if it was too large. */
  #declaredSizeBytes: number | undefined
  /** Body bytes that came from the origin (through what is composed inside the cache). */
  #receivedBytes = 0
  /** Why the final response is not stored (Cache-Status's `detail`); undefined while it may be. */
  notStoredBecause: string | undefined
  #committed = false
  #responseStarted = false
  #pendingWrite: Promise<void> | undefined
  /** The URLs a redirect handler composed inside the cache visited, when there is one (it adds to it). */
  #redirectHistory: readonly unknown[] | undefined

  constructor(
    exchange: Exchange,
    downstream: Dispatcher.DispatchHandler,
    relay: RelayController,
    options: ForwardOptions,
  ) {
    this.#exchange = exchange
    this.#downstream = downstream
    this.#relay = relay
    this.#fwd = options.fwd
    this.#flight = options.flight
    this.#next = options.next
    this.#onRefused = options.onRefused
  }

  /**
   * The response came from another URL: undici's redirect interceptor, composed inside the cache,
   * followed a redirect and hands on only the last hop's response (RFC 9111 §2: it is not this key's).
   */
  get redirected(): boolean {
    return (this.#redirectHistory?.length ?? 0) > 1
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#redirectHistory = redirectHistory(context)
    this.#pace = new DownloadPace(controller, this.#flight && this)
    this.#relay.setSource(this.#pace)
    this.#relay.start(this.#downstream, context)
  }

  onBodySent(...args: unknown[]): void {
    progressOf(this.#downstream).onBodySent?.(...args)
  }

  onRequestSent(): void {
    progressOf(this.#downstream).onRequestSent?.()
  }

  /** The caller left before the response started: the download went on for the requests waiting on it. */
  get callerGone(): boolean {
    return this.#pace?.callerLeft !== undefined
  }

  /**
   * A caller that aborts before the response has started, while identical requests wait on this one,
   * leaves the download to them; the last of them to leave stops it.
   */
  callerMayLeave(): boolean {
    return !this.#responseStarted && (this.#flight?.waiterCount ?? 0) > 0
  }

  /**
   * The caller is told at once. Its place is taken by a handler that stops the download if the
   * response is not for the others (not stored, or nobody waits any more); a reader made for it sees
   * the aborted controller and leaves.
   */
  callerLeaves(reason: Error): void {
    const caller = this.#downstream
    this.#downstream = { onResponseStart: () => this.#pace?.stop(reason) }
    const flight = this.#flight
    if (flight)
      flight.onLeave = () => {
        if (flight.waiterCount === 0) this.#pace?.stop(reason)
      }
    caller.onResponseError?.(this.#relay, reason)
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Headers,
    statusMessage?: string,
  ): void {
    // RFC 9110 §15.2: an interim response (103 Early Hints) goes to the caller as it came; the final follows
    if (statusCode < 200) {
      if (!this.callerGone) this.#relay.respond(this.#downstream, statusCode, headers, statusMessage)
      return
    }
    this.#responseStarted = true
    if (this.#flight) this.#flight.answered = true
    this.#declaredSizeBytes = contentLengthBytes(headers)
    const opened = this.#open(statusCode, headers, statusMessage ?? '')
    this.#writer = opened.writer
    this.#meta = opened.meta
    this.notStoredBecause = opened.detail
    if (opened.writer && this.#flight) this.#checkUnlessRangeable(headers)
    if (!opened.meta) this.#flight?.settle('not-stored')
    else this.#startFanOut(opened.meta, statusCode, headers, statusMessage)
    // RFC 9211 §2.6: reused by the requests fed it live or waiting for its entry (not another variant's)
    const collapsed =
      this.#fanOut !== undefined ||
      (opened.meta !== undefined && this.#flight?.awaitsEntry(opened.meta) === true)
    if (this.#exchange.request.method === 'HEAD') this.#freshenFromHead(statusCode, headers)
    const status = cacheStatusValue(this.#exchange.config, {
      fwd: this.#fwd,
      stored: opened.writer !== undefined,
      collapsed,
      detail: opened.detail,
    })
    // the Date added to a response without one says what the stored entry's hits will say
    const outgoing = forwardedHeaders(headers, status, opened.meta?.responseTimeMs)
    const flight = this.#flight
    const pace = this.#pace
    if (!opened.writer || !flight || !pace) {
      this.#relay.respond(this.#downstream, statusCode, outgoing, statusMessage)
      return
    }
    this.#sharedHeaders = headers
    // waiters already there (fed live, or waiting for the entry: a Range, its own conditionals, another variant)
    if (this.#fanOut || flight.waiterCount > 0) {
      this.#readAsOneOfMany(flight, pace).start(statusCode, outgoing, statusMessage)
      return
    }
    // alone so far: the caller reads the origin directly until an identical request joins
    flight.onJoin = () => this.#readAsOneOfMany(flight, pace)
    this.#relay.respond(this.#downstream, statusCode, outgoing, statusMessage)
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#receivedBytes += chunk.length
    if (this.#writer) this.#write(this.#writer, chunk)
    this.#fanOut?.data(chunk)
    if (this.#reader) this.#reader.data(chunk)
    else {
      this.#deliveredBytes += chunk.length
      this.#downstream.onResponseData?.(this.#relay, chunk)
    }
    this.#digest?.update(chunk)
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: Headers): void {
    this.#pace?.end()
    const end = () => {
      this.#flight?.settle(this.#committed ? 'stored' : 'not-stored')
      const storedCopy = this.#committed ? this.#storedCopy() : undefined
      const shared = this.#reader !== undefined || this.#fanOut !== undefined
      const ending: Ending = {
        storedCopy,
        fromOrigin: shared ? this.#fromOrigin() : undefined,
        trailers: trailers as Record<string, string>,
      }
      this.#fanOut?.end(ending)
      if (this.#reader) this.#reader.end(ending)
      else this.#endCaller(ending)
    }
    const writer = this.#writer
    this.#writer = undefined
    if (!writer) {
      end()
      return
    }
    // RFC 9111 §4.4: invalidated while it arrived (a store's delete need not reach writes in progress);
    // RFC 9111 §3.3: a body of another length than its Content-Length is incomplete (an interceptor
    // composed inside the cache, such as undici's dump, dropped or cut it)
    const incomplete =
      this.#declaredSizeBytes !== undefined && this.#receivedBytes !== this.#declaredSizeBytes
    if (this.#invalidatedSinceSent() || incomplete || this.#refusedBy(writer) || !this.#mostRecent()) {
      quietly(
        () => {},
        () => writer.abort(),
      )
      end()
      return
    }
    const fail = (error: unknown) => this.#storeFailed(writer, error, 'commit', end)
    const committed = () => {
      this.#committed = this.notStoredBecause === undefined
      end()
    }
    let result: MaybePromise<void>
    try {
      const pending = this.#pendingWrite
      // an asynchronous store's writes went on after the body ended: the last may have refused it
      const commit = () =>
        this.#refusedBy(writer) ? undefined : writer.commitSoon ? writer.commitSoon() : writer.commit()
      result = pending ? pending.then(commit) : commit()
    } catch (error) {
      fail(error)
      return
    }
    if (result === undefined) committed()
    else result.then(committed, fail)
  }

  /**
   * RFC 9111 §4: whether this response may replace its variant, the answer to a request sent before it
   * not having been committed since (see CommitOrder); if so, it is noted as the variant's last.
   */
  #mostRecent(): boolean {
    const { config, key, sentOrder } = this.#exchange
    const varyKey = this.#meta?.varyKey ?? ''
    if (config.commitOrder.outdated(key, varyKey, sentOrder)) return false
    config.commitOrder.committing(key, varyKey, sentOrder)
    return true
  }

  /**
   * The end for a caller reading the origin directly: an abort while the entry was being committed
   * (the origin had already finished) is its error; a throw from its handler is its own.
   */
  #endCaller(ending: Ending): void {
    if (this.#relay.aborted) {
      // told after the commit, on a promise of the cache's own (see tellError)
      tellError(this.#downstream, this.#relay, this.#relay.abortError as Error)
      return
    }
    this.#downstream.onResponseEnd?.(this.#relay, ending.trailers ?? {})
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#pace?.end()
    this.#writer?.abort()
    this.#writer = undefined
    this.#flight?.settle('not-stored')
    this.#fanOut?.fail(error)
    if (this.#reader) this.#reader.fail(error)
    else this.#downstream.onResponseError?.(this.#relay, error)
  }

  /**
   * The caller becomes one reader among the requests that wait on this flight: while any of them
   * still needs the download, the caller's pause only queues (then falls behind) and its abort ends
   * its own response; alone, its pause and abort reach the origin as before (DownloadPace).
   */
  #readAsOneOfMany(flight: Flight, pace: DownloadPace): ReaderStream {
    const reader = new ReaderStream(this.#downstream, this.#relay, pace, this.#deliveredBytes, this.#digest)
    this.#reader = reader
    flight.onJoin = () => pace.paceChanged()
    // the last one to leave, once the caller has gone too, stops the download
    const waiters = pace.forWaiters()
    flight.onLeave = (reason) => waiters.readerGone(reason)
    pace.share(reader, {
      othersNeed: () => flight.waiterCount > 0 || this.#fanOut?.reading === true,
      restAvailable: () => this.#restAvailable(),
      heldByCaller: () => flight.settle('held'),
      heldLongByCaller: () => {
        // those fed live ask the origin for their rest rather than wait for the caller
        const fromOrigin = this.#fromOrigin()
        if (fromOrigin) this.#fanOut?.leave({ fromOrigin })
      },
      entryAwaited: () => flight.waiterCount > 0,
    })
    return reader
  }

  /** RFC 9111 §4.4: an unsafe request invalidated the key since this one was sent: it may predate the write. */
  #invalidatedSinceSent(): boolean {
    const { config, key, invalidationCount } = this.#exchange
    return config.invalidations.since(key, invalidationCount)
  }

  /** RFC 9111 §4.3.5: a 200 to a HEAD freshens the stored GET, unless it came from where a redirect led. */
  #freshenFromHead(statusCode: number, headers: Headers): void {
    if (statusCode === 200 && !this.redirected) freshenFromHead(this.#exchange, { statusCode, headers })
  }

  /**
   * A download others may share is checked from its first byte when the origin could not send just a
   * rest (no strong ETag): a reader that falls behind can then be sent the whole body again (BodyDigest).
   */
  #checkUnlessRangeable(headers: Headers): void {
    if (strongEntityTagOf(headers) === undefined) this.#digest = new BodyDigest()
  }

  /**
   * A reader may fall behind rather than hold the download: the origin can send just the rest (a
   * strong ETag), or the store takes the whole body (its size was checked up front) and, should its
   * write fail, the origin can send the whole body again, checked.
   */
  #restAvailable(): boolean {
    if (this.#fromOrigin() === undefined) return false
    if (this.#digest === undefined) return true
    return this.#writer !== undefined && this.#declaredSizeBytes !== undefined
  }

  /** How a reader that fell behind asks the origin for the rest (a strong ETag or a digest allowing), made once. */
  #fromOrigin(): RestFetch | undefined {
    const headers = this.#sharedHeaders
    if (this.#restFetch === undefined && headers) {
      const { opts, request } = this.#exchange
      // for the readers of a shared download: no longer the first caller's request to cancel
      const rest = ownRequestOptions(opts, null)
      const fetcher = this.#digest ? checkedRestFetcher : restFetcher
      this.#restFetch = fetcher(this.#next, rest, request.headers, headers) ?? null
    }
    return this.#restFetch ?? undefined
  }

  #open(statusCode: number, headers: Headers, statusMessage: string): Opened {
    if (!this.#exchange.mayStore) return { detail: 'request-no-store' }
    if (this.#invalidatedSinceSent()) return { detail: 'invalidated' }
    if (this.redirected) return { detail: 'redirected' }
    const { config } = this.#exchange
    const decision = canStore(
      this.#exchange.request,
      policyView(config, { statusCode, headers }),
      config.shared,
    )
    if (!decision.storable) return { detail: decision.reason }
    const { store } = config
    try {
      const meta = entryMeta(this.#exchange, statusCode, headers, statusMessage)
      // a request's cache.ttl makes the response fresh that long to the requests that give one
      const forced = (this.#exchange.requestOptions?.ttl ?? 0) > 0
      if (!forced && !isWorthStoring(policyView(config, meta), config.shared))
        return { detail: 'no-freshness' }
      const writer = store.put(this.#exchange.key, meta, this.#declaredSizeBytes)
      return writer ? { writer, meta } : { detail: 'too-large' }
    } catch (error) {
      reportStoreError(store, 'put', error)
      return { detail: 'store-error' }
    }
  }

  /**
   * The waiters whose requests select this response (same Vary values) are fed it as it arrives,
   * with the fields the entry keeps: never the first caller's private ones (RFC 9111 §3.1).
   */
  #startFanOut(
    meta: EntryMeta,
    statusCode: number,
    headers: Headers,
    statusMessage: string | undefined,
  ): void {
    const selected = (waiter: LiveWaiter) => waiter.varyKeyFor(headers) === meta.varyKey
    // RFC 9111 §4: those it may not serve without validation (no-cache, stale on arrival, or as their
    // requests ask) send their own requests now
    this.#flight?.releaseLive((waiter) => selected(waiter) && !waiter.reuses(meta))
    const live = this.#flight?.takeLive(selected) ?? []
    if (live.length === 0) return
    this.#fanOut = new FanOut(
      live,
      statusCode,
      dated(meta.headers, meta.responseTimeMs),
      statusMessage,
      this.#pace?.forWaiters(),
      this.#digest,
    )
    this.#pace?.feeds(this.#fanOut)
  }

  /** Finds the entry this response became, for waiters that fell behind (never another one). */
  #storedCopy(): StoredCopy {
    const { config, key } = this.#exchange
    const meta = this.#meta
    // by its write id: another process's response to the same URL may have the same times
    const writeId = meta?.writeId
    const pick = (entries: StoredEntry[]) =>
      writeId === undefined ? undefined : entries.find((entry) => entry.writeId === writeId)
    return () => withEntries(config.store, key, pick)
  }

  #write(writer: EntryWriter, chunk: Buffer): void {
    const pending = this.#pendingWrite
    if (pending) {
      this.#writeLater(
        writer,
        pending.then(() => writer.write(chunk)),
        chunk.length,
      )
      return
    }
    try {
      const result = writer.write(chunk)
      if (result !== undefined) this.#writeLater(writer, result, chunk.length)
    } catch (error) {
      this.#storeFailed(writer, error, 'write')
    }
  }

  /** An asynchronous write: counted until done (the origin waits for a store far behind); a failure drops the entry at once. */
  #writeLater(writer: EntryWriter, result: Promise<void>, bytes: number): void {
    this.#pendingWrite = result
    this.#pace?.queued(bytes)
    result.then(
      () => this.#pace?.stored(bytes),
      (error: unknown) => {
        this.#pace?.stored(bytes)
        // once the response has ended the commit, chained on this write, reports it
        if (this.#writer === writer) this.#storeFailed(writer, error, 'write')
      },
    )
  }

  /** A body without Content-Length the store gave up on as too large: not stored, and the revalidation is told. */
  #refusedBy(writer: EntryWriter): boolean {
    if (writer.refused !== true) return false
    this.notStoredBecause = 'too-large'
    this.#onRefused?.()
    return true
  }

  /** A store failure drops the entry and lets the response go on (it is never truncated). */
  #storeFailed(writer: EntryWriter, error: unknown, operation: string, then?: () => void): void {
    this.#writer = undefined
    this.#flight?.settle('not-stored')
    // readers that fell behind (the origin can resend their rest) ask it now: the store will not have it
    const fromOrigin = this.#fromOrigin()
    if (fromOrigin) {
      this.#fanOut?.endBehind({ fromOrigin })
      this.#reader?.endIfBehind({ fromOrigin })
    }
    // the waiters for the entry go their own way: if the caller left, failed or fell behind too, only
    // those fed live may need the download
    const left = this.#pace?.callerLeft ?? (this.#reader?.reading === false ? new Error(UNREAD) : undefined)
    if (left && this.#fanOut?.reading !== true) this.#pace?.stop(left)
    this.#pace?.paceChanged()
    quietly(
      () => {},
      () => writer.abort(),
    )
    reportStoreError(this.#exchange.config.store, operation, error)
    then?.()
  }
}
