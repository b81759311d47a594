import { BloomBits } from './bloom-bits.js'
import { PathPeers } from './path-peers.js'
import type { DataVersion, VersionWatch } from './sqlite-data-version.js'

/** A row of the entries table, by id. */
export interface KeyedRow {
  id: number
  key: string
}

/** What the filter reads from the file. */
export interface KeySource {
  /** The highest row id (0 for none). */
  maxId(): number
  /** The complete entries of the file: about how many rows it holds. */
  totals(): { entries: number }
  /** Keys in key order, from the first or after `afterKey` (the key index only), up to the budget. */
  keysInOrder(afterKey: string | undefined, budget: ReadBudget): BudgetedRead<string>
  /** Rows (complete or not) with an id above `afterId`, in id order, up to the budget. */
  keysAfter(afterId: number, budget: ReadBudget): BudgetedRead<KeyedRow>
}

/** What one step read; `more` when it stopped at its budget, before what may be the last row. */
export interface BudgetedRead<Row> {
  rows: Row[]
  more: boolean
}

/** One step reads at most `rows` keys, and stops after the key that brings it to `chars` characters. */
export interface ReadBudget {
  rows: number
  chars: number
}

/** What one scan step reads at most (about a millisecond); a longer scan goes on in later macrotasks. */
export const SCAN_STEP: Readonly<ReadBudget> = { rows: 1_000, chars: 64 * 1024 }

/** Keys a filter is sized for at least. */
export const MIN_CAPACITY_KEYS = 1 << 16

/** A filter is sized for this many times the rows of the file when it is (re)built. */
const CAPACITY_PER_ROW = 1.5

const REPLACEMENT_CHARACTER = '\uFFFD'

/** The key filters of this process, by database file: a write tells the other stores on the file at once. */
const filters = new PathPeers<KeyFilter>()

function capacityFor(rowCount: number): number {
  return Math.max(MIN_CAPACITY_KEYS, Math.ceil(rowCount * CAPACITY_PER_ROW))
}

/**
 * A Bloom filter of the keys in one SQLite file, so that the lookup of a key never stored (every miss)
 * skips SQLite's read transaction.
 * - After the first lookup that finds nothing, it reads every key from the key index, in steps; until
 *   then every key may be present.
 * - Rows are never renamed and ids only grow (AUTOINCREMENT, one writer at a time), so what has been
 *   committed since is the rows past the highest id read. After each write of this store or of this
 *   process's other stores on the file, the rows it inserted are added as they are when their ids follow
 *   on from the highest one added (no other commit came between), else the rows past it are read.
 *   Another process's commits are seen within OTHER_WRITER_CHECK_MS, as by the hot tier (until then
 *   such a key reads as a miss).
 * - An incomplete row's key counts from its first write. Deleted keys stay until the filter is full; it
 *   is then built again, sized for the rows the file holds then, so its size follows the file's.
 */
export class KeyFilter {
  readonly #source: KeySource
  readonly #path: string | undefined
  #bits: BloomBits | undefined
  readonly #firstRowCount: number
  /** Every row up to this id has been added (once the build from the key index is done). */
  #scannedId = 0
  /** The last key the build from the key index added; undefined before its first step. */
  #buildCursor: string | undefined
  #readingKeyIndex = false
  /** Every key of the file is in: a key the bits do not hold is absent. */
  #complete = false
  #closed = false
  #nextStep: NodeJS.Immediate | undefined
  /** Whether another connection committed since the filter last looked. */
  readonly #otherWrites: VersionWatch
  /** From a build's start until it has read every row (from the key index, or by id). */
  #building = false
  /** Keys read since the last build began, and by the last build that finished. */
  #keysRead = 0
  #keysBuilt = 0

  /** `rowCount`: about how many rows the file holds; `path` as for HotTier. */
  constructor(source: KeySource, dataVersion: DataVersion, rowCount: number, path: string | undefined) {
    this.#source = source
    this.#otherWrites = dataVersion.watch()
    this.#path = path
    this.#firstRowCount = rowCount
    filters.join(path, this)
  }

  /** Every key of the file has been read: a key the filter does not hold is absent. */
  get ready(): boolean {
    return this.#complete
  }

  /** Bytes of the bit array (0 before the first build). */
  get sizeBytes(): number {
    return this.#bits?.sizeBytes ?? 0
  }

  /** A lookup found nothing: the filter is worth building (a store that only hits never reads its keys). */
  missed(): void {
    if (this.#bits || this.#closed) return
    this.#build(this.#firstRowCount)
    this.#step()
  }

  /** False only when no row of the file has `key` (as of at most OTHER_WRITER_CHECK_MS ago). */
  mayHold(key: string): boolean {
    // while a scan is under way, its later steps read what was committed meanwhile
    if (!this.#complete) return true
    if (this.#otherWrites.changed()) this.#step()
    return !this.#complete || this.#bits?.mayHold(key) !== false
  }

  /** A store of this process on the file committed, inserting `inserted` (in id order). */
  wrote(inserted: readonly KeyedRow[]): void {
    const stores = this.#path === undefined ? [this] : filters.of(this.#path)
    for (const filter of stores) if (filter.#complete) filter.#addCommitted(inserted)
  }

  close(): void {
    filters.leave(this.#path, this)
    this.#closed = true
    this.#reset()
  }

  /** The next step starts reading every key from the key index, into bits sized for `rowCount` rows. */
  #build(rowCount: number): void {
    this.#bits = new BloomBits(capacityFor(rowCount))
    this.#readingKeyIndex = true
    this.#buildCursor = undefined
    this.#complete = false
    this.#building = true
    this.#keysRead = 0
  }

  /** Back to before the first miss: the next one builds the filter again. */
  #reset(): void {
    if (this.#nextStep) clearImmediate(this.#nextStep)
    this.#nextStep = undefined
    this.#complete = false
    this.#bits = undefined
  }

  /**
   * Rows just committed: added without reading them when their ids follow on from the last one added
   * (ids are given in commit order), else the rows past that one are read, these among them.
   */
  #addCommitted(rows: readonly KeyedRow[]): void {
    const last = rows.at(-1)
    // a write that inserted no row (an update, a delete) has no key to add
    if (last === undefined) return
    if (!followsOn(rows, this.#scannedId)) {
      this.#step()
      return
    }
    let added: boolean
    try {
      added = this.#addAll(rows.map((row) => row.key))
    } catch {
      // a full filter counts the file's rows first: when that read fails, as in #step
      this.#reset()
      return
    }
    if (added) this.#scannedId = last.id
    else this.#step()
  }

  /** One step of the build from the key index, or of the rows past the last id read. */
  #step(): void {
    if (this.#closed) return
    let more: boolean
    try {
      more = this.#readingKeyIndex ? this.#buildStep() : this.#rowsStep()
    } catch {
      // the file cannot be read now: lookups go to SQLite, which reports why; the next miss tries again
      this.#reset()
      return
    }
    if (!more && this.#building) {
      this.#building = false
      this.#keysBuilt = this.#keysRead
    }
    this.#complete = !more
    if (more && !this.#nextStep) {
      this.#nextStep = setImmediate(() => {
        this.#nextStep = undefined
        this.#step()
      }).unref()
    }
  }

  /** True while the key index has more keys to read. */
  #buildStep(): boolean {
    if (this.#buildCursor === undefined) {
      // look first: a commit after this is seen as a change, and its rows lie past the highest id
      this.#otherWrites.fromNow()
      this.#scannedId = this.#source.maxId()
    }
    const { rows: keys, more } = this.#source.keysInOrder(this.#buildCursor, SCAN_STEP)
    if (!this.#addAll(keys)) return true
    const last = keys.at(-1)
    if (!more || last === undefined) {
      this.#readingKeyIndex = false
      return this.#rowsStep()
    }
    if (last.includes(REPLACEMENT_CHARACTER)) {
      // read back with U+FFFD, the key may not be what SQLite holds (a lone surrogate is kept as other
      // bytes), so it cannot say where the next step starts: the rest is read by id, from the first row
      this.#readingKeyIndex = false
      this.#scannedId = 0
      return true
    }
    this.#buildCursor = last
    return true
  }

  /** True while rows past the last id read remain. */
  #rowsStep(): boolean {
    const { rows, more } = this.#source.keysAfter(this.#scannedId, SCAN_STEP)
    if (!this.#addAll(rows.map((row) => row.key))) return true
    this.#scannedId = rows.at(-1)?.id ?? this.#scannedId
    return more
  }

  /**
   * False when the bits filled up: then the next step starts a build sized for the rows the file holds
   * now (its count, or the keys the last build read if more), or twice as large when they filled up
   * during a build (the file holds more than it counts).
   */
  #addAll(keys: readonly string[]): boolean {
    const bits = this.#bits as BloomBits
    for (const key of keys) {
      if (bits.full) {
        const rowCount = Math.max(this.#source.totals().entries, this.#keysBuilt)
        this.#build(this.#building ? Math.max(rowCount, bits.capacityKeys * 2) : rowCount)
        return false
      }
      bits.add(key)
      this.#keysRead++
    }
    return true
  }
}

/** Whether the rows' ids run on from `lastId` without a gap. */
function followsOn(rows: readonly KeyedRow[], lastId: number): boolean {
  let expectedId = lastId + 1
  for (const row of rows) if (row.id !== expectedId++) return false
  return true
}
