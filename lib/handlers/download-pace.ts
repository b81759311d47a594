import type { Dispatcher } from 'undici'
import type { ReaderStream, Upstream } from './reader-stream.js'
import type { ResponseSource } from './relay-controller.js'

/** Bytes handed to an asynchronous store and not yet written, past which the origin waits for it. */
export const MAX_BACKLOG_BYTES = 4 * 1024 * 1024

/**
 * How long in all a caller may hold the download others need (a full queue and no way to fall behind)
 * before the requests waiting for the entry go their own way. A reader that keeps up (fetch()'s short
 * backpressure pauses) holds it a moment now and then; one that stopped, or reads far slower than the
 * origin sends, reaches it.
 */
export const HOLD_GRACE_MS = 100

/**
 * How long at a time a waiter fed live may hold the download for the others while its rest could be
 * had only as the whole body again (the store refused the body, and no strong ETag): a slower reader,
 * or one pausing a while, gets it from this download; one that stopped is let fall behind then (and
 * asks the origin for the whole body again at the end, checked: BodyDigest). Also how long at a stretch
 * a first caller may hold the waiters fed live before they ask the origin for their rest.
 */
export const WAITER_HOLD_MS = 1000

/** The waiters fed live (FanOut), as the download's pace sees them. */
export interface FedLive {
  /** A waiter wants more now: not paused, nothing queued, still to be fed (live, or its rest). */
  readonly waiting: boolean
  readonly stalled: boolean
  readonly flowing: boolean
  releaseStalled(): void
}

/** What a download knows of the other requests sharing it. */
export interface Sharing {
  /** Another request still needs this download: a waiter fed live, or one waiting for the entry. */
  othersNeed(): boolean
  /**
   * A reader that falls behind will find its rest cheaply: the origin can send just the rest, or the
   * entry is being stored whole (should the store fail, the origin resends it all, checked).
   */
  restAvailable(): boolean
  /** Others need the download but the caller holds it (it cannot fall behind): those waiting for the entry go their own way. */
  heldByCaller(): void
  /** The caller held it WAITER_HOLD_MS at a stretch: those fed live leave it for their rest from the origin. */
  heldLongByCaller(): void
  /** Requests wait for the entry (not fed live). */
  entryAwaited(): boolean
}

/** Asked when the caller aborts whether the download may go on without it (others need it). */
export interface CallerExit {
  callerMayLeave(): boolean
  /** The caller has left: it is told (a throw from its handler reaches its abort(), as in undici). */
  callerLeaves(reason: Error): void
}

/**
 * Decides when the origin may send. It waits for a caller that stopped reading, unless others need
 * the download and the caller can fall behind and read the rest later; and for an asynchronous store
 * that is MAX_BACKLOG_BYTES behind. The caller's abort stops the download only if nobody else needs it.
 * It is the caller's controller's source until the caller becomes one reader of a shared download.
 */
export class DownloadPace implements ResponseSource, Upstream {
  readonly #origin: Dispatcher.DispatchController
  #shared: { reader: ReaderStream; sharing: Sharing } | undefined
  #callerPaused = false
  #backlogBytes = 0
  #ended = false
  readonly #exit: CallerExit | undefined
  /** Why the caller left while others needed the download: its pace counts no more. */
  #callerLeft: Error | undefined
  /** Running while the caller holds the download others need (HOLD_GRACE_MS). */
  #holdTimer: NodeJS.Timeout | undefined
  /** Since when the caller holds it, and for how long it held it before (ms). */
  #holdingSinceMs: number | undefined
  #heldMs = 0
  /** The requests waiting for the entry have been let go (heldByCaller). */
  #othersLetGo = false
  /** Running while the caller holds the download and a waiter fed live wants more (WAITER_HOLD_MS at a stretch). */
  #liveHoldTimer: NodeJS.Timeout | undefined
  #fedLive: FedLive | undefined
  /** Running while a waiter fed live holds the download (WAITER_HOLD_MS). */
  #waiterHoldTimer: NodeJS.Timeout | undefined

  constructor(origin: Dispatcher.DispatchController, exit?: CallerExit) {
    this.#origin = origin
    this.#exit = exit
  }

  /** Why the caller left early while others needed the download, if it did. */
  get callerLeft(): Error | undefined {
    return this.#callerLeft
  }

  /** From now on the caller reads through `reader`, one of the readers sharing the download. */
  share(reader: ReaderStream, sharing: Sharing): void {
    this.#shared = { reader, sharing }
    // the caller left, and those fed live may have left too as the response started
    if (this.#callerLeft && !sharing.othersNeed()) this.stop(this.#callerLeft)
    else this.#follow()
  }

  /** The waiters fed live: their pace counts while the rest could not be read later. */
  feeds(fedLive: FedLive): void {
    this.#fedLive = fedLive
  }

  /** The origin has finished sending (or failed): nothing to pace any more. */
  end(): void {
    this.#ended = true
    this.#stopHoldTimer()
    this.#stopLiveHoldTimer()
    this.#stopWaiterHoldTimer()
  }

  /** `bytes` were handed to an asynchronous store. */
  queued(bytes: number): void {
    this.#backlogBytes += bytes
    if (this.#backlogBytes > MAX_BACKLOG_BYTES) this.#follow()
  }

  /** `bytes` handed to the store earlier are written (or dropped). */
  stored(bytes: number): void {
    this.#backlogBytes -= bytes
    this.#follow()
  }

  pause(): void {
    if (this.#callerLeft) return
    this.#callerPaused = true
    this.#follow()
  }

  resume(): void {
    if (this.#callerLeft) return
    this.#callerPaused = false
    this.#follow()
  }

  abort(reason: Error): void {
    if (this.#callerLeft) return
    const exit = this.#exit
    if (!exit?.callerMayLeave()) {
      this.#origin.abort(reason)
      return
    }
    // a caller that paused and left holds nothing up
    this.#callerLeft = reason
    this.#callerPaused = false
    this.#follow()
    exit.callerLeaves(reason)
  }

  /** Stops the download: nobody needs it any more. */
  stop(reason: Error): void {
    if (!this.#ended) this.#origin.abort(reason)
  }

  paceChanged(): void {
    this.#follow()
  }

  readerGone(reason: Error): void {
    // a reader made for a caller that left early is gone before it shares the download
    const shared = this.#shared
    if (shared && !this.#ended && !shared.sharing.othersNeed()) this.#origin.abort(reason)
    // the others read on: a caller that held the download holds it no more
    else this.#follow()
  }

  /** What a waiter fed live tells the download: its leaving may leave nobody to read it. */
  forWaiters(): Upstream {
    return {
      paceChanged: () => this.#follow(),
      readerGone: (reason) => {
        const callerReading = !this.#callerLeft && (this.#shared?.reader.reading ?? true)
        if (!callerReading) this.readerGone(reason)
        // a waiter that held the download holds it no more
        else this.#follow()
      },
      mayFallBehind: () => this.#shared?.sharing.restAvailable() ?? true,
      held: () => this.held(),
    }
  }

  held(): boolean {
    return this.#origin.paused
  }

  mayFallBehind(): boolean {
    const sharing = this.#shared?.sharing
    return sharing?.othersNeed() === true && sharing.restAvailable()
  }

  #follow(): void {
    if (this.#ended) return
    const callerHolds = this.#callerHolds()
    if (callerHolds) this.#startHoldTimer()
    else this.#stopHoldTimer()
    if (callerHolds && this.#fedLive?.waiting) this.#startLiveHoldTimer()
    else this.#stopLiveHoldTimer()
    const waiterHolds = this.#waiterHolds()
    if (waiterHolds) this.#startWaiterHoldTimer()
    else this.#stopWaiterHoldTimer()
    const pause = callerHolds || waiterHolds || this.#backlogBytes > MAX_BACKLOG_BYTES
    if (pause && !this.#origin.paused) this.#origin.pause()
    else if (!pause && this.#origin.paused) this.#origin.resume()
  }

  /** Others waiting on a caller that holds the download are let go once it has held it HOLD_GRACE_MS in all. */
  #startHoldTimer(): void {
    if (this.#othersLetGo || this.#holdTimer || !this.#shared?.sharing.othersNeed()) return
    this.#holdingSinceMs = performance.now()
    this.#holdTimer = setTimeout(
      () => {
        this.#holdTimer = undefined
        const sharing = this.#shared?.sharing
        if (this.#ended || !this.#callerHolds() || !sharing?.othersNeed()) return
        this.#othersLetGo = true
        sharing.heldByCaller()
      },
      Math.max(0, HOLD_GRACE_MS - this.#heldMs),
    ).unref()
  }

  /**
   * Those fed live that want more leave a caller that has held them WAITER_HOLD_MS at a stretch (it
   * stopped), not one that holds them now and then (it reads slower than the origin sends, and they keep
   * its pace), nor while they pause too: each would have to ask the origin for the whole body again.
   */
  #startLiveHoldTimer(): void {
    if (this.#liveHoldTimer) return
    this.#liveHoldTimer = setTimeout(() => {
      this.#liveHoldTimer = undefined
      if (!this.#ended && this.#callerHolds() && this.#fedLive?.waiting)
        this.#shared?.sharing.heldLongByCaller()
    }, WAITER_HOLD_MS).unref()
  }

  #stopLiveHoldTimer(): void {
    clearTimeout(this.#liveHoldTimer)
    this.#liveHoldTimer = undefined
  }

  #stopHoldTimer(): void {
    if (this.#holdingSinceMs !== undefined) this.#heldMs += performance.now() - this.#holdingSinceMs
    this.#holdingSinceMs = undefined
    clearTimeout(this.#holdTimer)
    this.#holdTimer = undefined
  }

  /** A waiter fed live that stopped reading holds the origin while the rest could not be read later. */
  #waiterHolds(): boolean {
    return this.#fedLive?.stalled === true && this.#shared?.sharing.restAvailable() === false
  }

  /** After WAITER_HOLD_MS at a time, the stalled waiters fall behind if they hold up another reader. */
  #startWaiterHoldTimer(): void {
    if (this.#waiterHoldTimer) return
    this.#waiterHoldTimer = setTimeout(() => {
      this.#waiterHoldTimer = undefined
      if (this.#waiterHolds() && this.#othersHeldByWaiters()) this.#fedLive?.releaseStalled()
      this.#follow()
    }, WAITER_HOLD_MS).unref()
  }

  #stopWaiterHoldTimer(): void {
    clearTimeout(this.#waiterHoldTimer)
    this.#waiterHoldTimer = undefined
  }

  /**
   * Another request waits on the stalled waiters: the caller or another waiter fed live that takes more
   * (not one the caller holds itself, nor a caller that fell behind), or a request waiting for the entry.
   */
  #othersHeldByWaiters(): boolean {
    if (this.#shared?.sharing.entryAwaited()) return true
    if (this.#callerHolds()) return false
    const reader = this.#shared?.reader
    const callerTakes =
      !this.#callerLeft && reader !== undefined && reader.reading && !reader.behind && !reader.stalled
    return callerTakes || this.#fedLive?.flowing === true
  }

  /** A caller that stopped reading holds the origin, unless it may fall behind instead. */
  #callerHolds(): boolean {
    if (!this.#shared) return this.#callerPaused
    return this.#shared.reader.stalled && !this.mayFallBehind()
  }
}
