/**
 * At least 10 bits a key (a power of two in all: 10 to 20) and 7 probes: a full filter answers "maybe"
 * for under 1% of absent keys.
 */
const MIN_BITS_PER_KEY = 10
const PROBES = 7

// The two hashes of the last key hashed (module-level: no allocation per lookup).
let hashA = 0
let hashB = 0

/** Whether `unit`, a surrogate at `index`, is half of a pair. */
function isPaired(key: string, index: number, unit: number): boolean {
  if (unit <= 0xdbff) {
    const next = key.charCodeAt(index + 1)
    return next >= 0xdc00 && next <= 0xdfff
  }
  const previous = key.charCodeAt(index - 1)
  return previous >= 0xd800 && previous <= 0xdbff
}

/**
 * FNV-1a and a multiply-xorshift hash of the key's UTF-16 code units, for double hashing. False for a
 * key with a lone surrogate: what SQLite keeps for it (as UTF-8) is another string, so no hash of the
 * key can say it is absent.
 */
function hashKey(key: string): boolean {
  let a = 0x811c9dc5
  let b = 0x9747b28c
  let wellFormed = true
  for (let index = 0; index < key.length; index++) {
    const unit = key.charCodeAt(index)
    if (unit >= 0xd800 && unit <= 0xdfff && !isPaired(key, index, unit)) wellFormed = false
    a = Math.imul(a ^ unit, 0x01000193)
    b = Math.imul(b ^ unit, 0x5bd1e995)
    b ^= b >>> 15
  }
  hashA = a >>> 0
  hashB = (b | 1) >>> 0
  return wellFormed
}

/** A Bloom filter of strings, sized for `capacityKeys`. */
export class BloomBits {
  readonly capacityKeys: number
  /** Keys that set at least one new bit. */
  addedKeys = 0
  readonly #bits: Uint32Array
  readonly #mask: number

  constructor(capacityKeys: number) {
    this.capacityKeys = capacityKeys
    let bitCount = 32
    while (bitCount < capacityKeys * MIN_BITS_PER_KEY) bitCount *= 2
    this.#bits = new Uint32Array(bitCount / 32)
    this.#mask = bitCount - 1
  }

  get full(): boolean {
    return this.addedKeys >= this.capacityKeys
  }

  get sizeBytes(): number {
    return this.#bits.byteLength
  }

  /** False only when `key` was never added. */
  mayHold(key: string): boolean {
    if (!hashKey(key)) return true
    for (let probe = 0; probe < PROBES; probe++) {
      const bit = (hashA + probe * hashB) & this.#mask
      if (((this.#bits[bit >>> 5] ?? 0) & (1 << (bit & 31))) === 0) return false
    }
    return true
  }

  add(key: string): void {
    hashKey(key)
    let newBits = false
    for (let probe = 0; probe < PROBES; probe++) {
      const bit = (hashA + probe * hashB) & this.#mask
      const flag = 1 << (bit & 31)
      const word = this.#bits[bit >>> 5] ?? 0
      if ((word & flag) === 0) newBits = true
      this.#bits[bit >>> 5] = word | flag
    }
    if (newBits) this.addedKeys++
  }
}
