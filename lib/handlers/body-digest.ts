import { crc32 } from 'node:zlib'

/**
 * A running CRC-32 of a shared response's body from its first byte. Without a strong ETag the origin
 * cannot be asked for just the rest (RFC 9110 §13.1.5, §8.8.3), so a reader that fell behind is sent
 * the whole body again, and its rest is spliced on only if the bytes before it check the same. The
 * origin sends both bodies, so a check meant to catch a changed representation (not an attacker)
 * suffices, and CRC-32 costs ~0.2 ms a MiB (SHA-256 ~0.6).
 */
export class BodyDigest {
  #crc = 0

  /** The check value of the bytes so far. */
  get crc(): number {
    return this.#crc
  }

  update(chunk: Buffer): void {
    this.#crc = continueCrc(this.#crc, chunk)
  }
}

/**
 * The check value of `chunk` following bytes whose check value is `crc`. An empty chunk changes
 * nothing (zlib's crc32() answers 0 for one that has no memory behind it: undici hands some on).
 */
export function continueCrc(crc: number, chunk: Buffer): number {
  return chunk.length === 0 ? crc : crc32(chunk, crc)
}
