import { PathPeers } from './path-peers.js'

/** What the filter reads from the file. */
export interface KeySource {
  /** SQLite's `PRAGMA data_version`: changes whenever another connection commits. */
  dataVersion(): number
  /** The highest row id (0 for none). */
  maxId(): number
  /** Up to `limit` keys in key order, from the first or after `afterKey` (the key index, no table rows). */
  keysInOrder(afterKey: string | undefined, limit: number): string[]
  /** Up to `limit` rows (complete or not) with an id above `afterId`, in id order. */
  keysAfter(afterId: number, limit: number): { id: number; key: string }[]
}

/** Rows one scan step reads (one to a few milliseconds); a longer scan goes on in later macrotasks. */
export const SCAN_STEP_ROWS = 2_000

/** Another process's commits are looked for at most this often (as the hot tier does). */
export const OTHER_WRITER_CHECK_MS = 1

/** Keys the first stage is sized for at least; each later stage holds twice the one before. */
export const MIN_STAGE_KEYS = 1 << 16

/**
 * At least 10 bits a key (a power of two in all, up to 20) and 7 probes: under 1% of absent keys look
 * present in a full stage (then SQLite is asked).
 */
const MIN_BITS_PER_KEY = 10
const PROBES = 7

/** The key filters of this process, by database file: a write tells the other stores on the file at once. */
const filters = new PathPeers<KeyFilter>()

// The two hashes of the last key hashed (module-level: no allocation per lookup).
let hashA = 0
let hashB = 0

/** FNV-1a and a multiply-xorshift hash of the key's UTF-16 code units, for double hashing. */
function hashKey(key: string): void {
  let a = 0x811c9dc5
  let b = 0x9747b28c
  for (let index = 0; index < key.length; index++) {
    const unit = key.charCodeAt(index)
    a = Math.imul(a ^ unit, 0x01000193)
    b = Math.imul(b ^ unit, 0x5bd1e995)
    b ^= b >>> 15
  }
  hashA = a >>> 0
  hashB = (b | 1) >>> 0
}

/** One Bloom filter; when it holds `capacityKeys`, the next, twice as big, takes the new keys. */
class Stage {
  readonly bits: Uint32Array
  readonly mask: number
  readonly capacityKeys: number
  /** Keys that set at least one new bit. */
  addedKeys = 0

  constructor(capacityKeys: number) {
    this.capacityKeys = capacityKeys
    let bitCount = 32
    while (bitCount < capacityKeys * MIN_BITS_PER_KEY) bitCount *= 2
    this.bits = new Uint32Array(bitCount / 32)
    this.mask = bitCount - 1
  }

  /** Whether the last key hashed may be in this stage. */
  mayHoldHashed(): boolean {
    for (let probe = 0; probe < PROBES; probe++) {
      const bit = (hashA + probe * hashB) & this.mask
      if (((this.bits[bit >>> 5] ?? 0) & (1 << (bit & 31))) === 0) return false
    }
    return true
  }

  addHashed(): void {
    let newBits = false
    for (let probe = 0; probe < PROBES; probe++) {
      const bit = (hashA + probe * hashB) & this.mask
      const flag = 1 << (bit & 31)
      const word = this.bits[bit >>> 5] ?? 0
      if ((word & flag) === 0) newBits = true
      this.bits[bit >>> 5] = word | flag
    }
    if (newBits) this.addedKeys++
  }
}

/**
 * A Bloom filter of the keys in one SQLite file, so that the lookup of a key never stored (every miss)
 * skips SQLite's read transaction.
 * - After the first lookup that finds nothing, it reads every key from the key index, in steps; until
 *   then every key may be present.
 * - Rows are never renamed and ids only grow (AUTOINCREMENT, one writer at a time), so what has been
 *   committed since is the rows past the highest id read. They are read after each write of this store
 *   and of this process's other stores on the file; another process's commits are seen within
 *   OTHER_WRITER_CHECK_MS, as by the hot tier (until then such a key reads as a miss).
 * - An incomplete row's key counts from its first write; deleted rows stay, as false positives.
 */
export class KeyFilter {
  readonly #source: KeySource
  readonly #path: string | undefined
  readonly #firstStageKeys: number
  readonly #stages: Stage[] = []
  /** Every row up to this id has been added (once the build from the key index is done). */
  #scannedId = 0
  /** The last key the build from the key index added; undefined before the first step. */
  #buildCursor: string | undefined
  #started = false
  #building = true
  /** Every key of the file is in: a key found in no stage is absent. */
  #complete = false
  #failed = false
  #nextStep: NodeJS.Immediate | undefined
  #dataVersion = 0
  #checkedMs = 0

  /** `rowCount`: about how many rows the file holds; `path` as for HotTier. */
  constructor(source: KeySource, rowCount: number, path: string | undefined) {
    this.#source = source
    this.#path = path
    this.#firstStageKeys = Math.max(MIN_STAGE_KEYS, Math.ceil(rowCount * 1.25))
    filters.join(path, this)
  }

  /** A lookup found nothing: the filter is worth building (a store that only hits never reads its keys). */
  missed(): void {
    if (this.#started) return
    this.#started = true
    this.#stages.push(new Stage(this.#firstStageKeys))
    this.#step()
  }

  /** Every key of the file has been read: a key found in no stage is absent. */
  get ready(): boolean {
    return this.#complete
  }

  /** False only when no row of the file has `key` (as of at most OTHER_WRITER_CHECK_MS ago). */
  mayHold(key: string): boolean {
    // while a scan is under way, its later steps read what was committed meanwhile
    if (!this.#complete) return true
    if (this.#otherWriterCommitted()) this.#step()
    if (!this.#complete) return true
    hashKey(key)
    for (const stage of this.#stages) if (stage.mayHoldHashed()) return true
    return false
  }

  /** A store of this process on the file committed: the rows past the last one read are added. */
  wrote(): void {
    const stores = this.#path === undefined ? [this] : filters.of(this.#path)
    for (const filter of stores) if (filter.#complete) filter.#step()
  }

  close(): void {
    filters.leave(this.#path, this)
    if (this.#nextStep) clearImmediate(this.#nextStep)
    this.#nextStep = undefined
    this.#failed = true
    this.#complete = false
    this.#stages.length = 0
  }

  #add(key: string): void {
    hashKey(key)
    let stage = this.#stages[this.#stages.length - 1] as Stage
    if (stage.addedKeys >= stage.capacityKeys) {
      stage = new Stage(stage.capacityKeys * 2)
      this.#stages.push(stage)
    }
    stage.addHashed()
  }

  /** One step of the build from the key index, or of the rows past the last id read. */
  #step(): void {
    if (this.#failed) return
    let more: boolean
    try {
      more = this.#building ? this.#buildStep() : this.#rowsStep()
    } catch {
      // the file cannot be read: lookups go to SQLite, which reports why
      this.close()
      return
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
      // read first: a commit after this is seen as a change, and its rows lie past the highest id
      this.#dataVersion = this.#source.dataVersion()
      this.#checkedMs = performance.now()
      this.#scannedId = this.#source.maxId()
    }
    const keys = this.#source.keysInOrder(this.#buildCursor, SCAN_STEP_ROWS)
    for (const key of keys) this.#add(key)
    this.#buildCursor = keys.at(-1) ?? this.#buildCursor
    if (keys.length === SCAN_STEP_ROWS) return true
    this.#building = false
    return this.#rowsStep()
  }

  /** True while rows past the last id read remain. */
  #rowsStep(): boolean {
    const rows = this.#source.keysAfter(this.#scannedId, SCAN_STEP_ROWS)
    for (const row of rows) {
      this.#add(row.key)
      this.#scannedId = row.id
    }
    return rows.length === SCAN_STEP_ROWS
  }

  /** Reads data_version when the last look is OTHER_WRITER_CHECK_MS old; true when it changed. */
  #otherWriterCommitted(): boolean {
    const nowMs = performance.now()
    if (nowMs - this.#checkedMs < OTHER_WRITER_CHECK_MS) return false
    this.#checkedMs = nowMs
    const version = this.#source.dataVersion()
    if (version === this.#dataVersion) return false
    this.#dataVersion = version
    return true
  }
}
