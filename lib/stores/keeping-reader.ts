import { type BodyWatch, type WatchedBody, watchBody } from './watched-body.js'

/** What a KeepingReader asks of the tier it may keep a body for. */
export interface Keeper {
  /** Whether this reader may keep what it reads (at most one reader keeps an entry's body). */
  claim(reader: KeepingReader): boolean
  /** This reader keeps nothing more (read whole, failed, stopped, or told to stop). */
  release(reader: KeepingReader): void
  /** The whole body, copied by this reader as it read it. */
  kept(body: Buffer): void
}

/**
 * Watches one read of a body and, when its keeper lets it (asked at the first read, so a read never
 * started holds nothing), copies each piece into one buffer of `sizeBytes` before it is handed on:
 * what is kept is what was read, whatever the caller then does with its pieces. A read that fails,
 * stops early (a range, an aborted response) or is longer than `sizeBytes`, or `stopKeeping()`,
 * drops the copy.
 */
export class KeepingReader implements BodyWatch {
  readonly #sizeBytes: number
  readonly #keeper: Keeper
  /** The copy being made; undefined when not keeping. */
  #copy: Buffer | undefined
  #copiedBytes = 0

  constructor(sizeBytes: number, keeper: Keeper) {
    this.#sizeBytes = sizeBytes
    this.#keeper = keeper
  }

  /** `source` read as before (synchronous stays synchronous), kept as it goes if the keeper lets it. */
  read(source: Iterable<Buffer> | AsyncIterable<Buffer>): WatchedBody {
    return watchBody(source, this)
  }

  started(): void {
    if (this.#keeper.claim(this)) this.#copy = Buffer.allocUnsafeSlow(this.#sizeBytes)
  }

  piece(piece: Buffer): void {
    if (this.#copy === undefined) return
    if (this.#copiedBytes + piece.length > this.#sizeBytes) {
      this.stopKeeping()
      return
    }
    this.#copy.set(piece, this.#copiedBytes)
    this.#copiedBytes += piece.length
  }

  ended(whole: boolean): void {
    const copy = this.#copy
    this.stopKeeping()
    if (whole && copy && this.#copiedBytes === this.#sizeBytes) this.#keeper.kept(copy)
  }

  /** Drops the copy made so far and keeps no more. */
  stopKeeping(): void {
    if (this.#copy === undefined) return
    this.#copy = undefined
    this.#keeper.release(this)
  }
}
