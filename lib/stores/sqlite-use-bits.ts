/**
 * Which entries were used since their recorded use (`last_used_ms`): one bit an entry id, in rows of
 * USE_BLOCK_IDS ids. Writing a use moved the entry in the LRU index and rewrote its row (a 1 KiB body
 * lives in it): with hits spread over 10⁶ entries, ~60 µs of each. Setting bits rewrites one small
 * row for all the uses of a block. Eviction reads them: an entry used since gets a second chance.
 */
import type Database from 'better-sqlite3'

/** Entry ids one row of `used_bits` covers (1 KiB of bits). */
export const USE_BLOCK_IDS = 8192

const BLOCK_BYTES = USE_BLOCK_IDS / 8

export const USE_BITS_SQL = {
  select: 'SELECT bits FROM used_bits WHERE block = ?',
  upsert: `INSERT INTO used_bits (block, bits) VALUES (?, ?)
    ON CONFLICT (block) DO UPDATE SET bits = excluded.bits`,
  // a block none of whose ids is an entry any more (ids are never reused)
  dropUnused: `DELETE FROM used_bits WHERE NOT EXISTS (SELECT 1 FROM entries
    WHERE id >= used_bits.block * ${USE_BLOCK_IDS} AND id < (used_bits.block + 1) * ${USE_BLOCK_IDS})`,
} as const

/** The use bits of one connection; every method runs inside the caller's write transaction. */
export class UseBits {
  readonly #select: Database.Statement<[number], Buffer>
  readonly #upsert: Database.Statement<[number, Buffer]>
  readonly #dropUnused: Database.Statement<[]>

  constructor(db: Database.Database) {
    this.#select = db.prepare<[number], Buffer>(USE_BITS_SQL.select).pluck()
    this.#upsert = db.prepare<[number, Buffer]>(USE_BITS_SQL.upsert)
    this.#dropUnused = db.prepare<[]>(USE_BITS_SQL.dropUnused)
  }

  /** Sets the bits of these entries: one read and at most one write a block. */
  set(entryIds: Iterable<number>): void {
    const byBlock = new Map<number, number[]>()
    for (const entryId of entryIds) {
      const block = Math.floor(entryId / USE_BLOCK_IDS)
      const ids = byBlock.get(block)
      if (ids) ids.push(entryId)
      else byBlock.set(block, [entryId])
    }
    for (const [block, ids] of byBlock) {
      const bits = this.#read(block)
      let changed = false
      for (const entryId of ids) {
        const { byte, mask } = position(entryId)
        if (((bits[byte] as number) & mask) !== 0) continue
        bits[byte] = (bits[byte] as number) | mask
        changed = true
      }
      if (changed) this.#upsert.run(block, bits)
    }
  }

  /** Whether the entry was used since its recorded use; clears its bit (the second chance is taken). */
  take(entryId: number): boolean {
    const block = Math.floor(entryId / USE_BLOCK_IDS)
    const bits = this.#read(block)
    const { byte, mask } = position(entryId)
    if (((bits[byte] as number) & mask) === 0) return false
    bits[byte] = (bits[byte] as number) & ~mask
    this.#upsert.run(block, bits)
    return true
  }

  /** Drops the blocks of ids that are all gone. */
  dropUnused(): void {
    this.#dropUnused.run()
  }

  /** A block's bits, a copy of full length (zeros for a block not written, or a short blob). */
  #read(block: number): Buffer {
    const bits = Buffer.alloc(BLOCK_BYTES)
    const stored = this.#select.get(block)
    if (Buffer.isBuffer(stored)) stored.copy(bits, 0, 0, BLOCK_BYTES)
    return bits
  }
}

function position(entryId: number): { byte: number; mask: number } {
  const bit = entryId % USE_BLOCK_IDS
  return { byte: bit >> 3, mask: 1 << (bit & 7) }
}
