/**
 * Another connection's commits are looked for (SQLite's `PRAGMA data_version`, a read transaction of
 * ~5 µs, as long as a whole hit from memory) at most this often: what the hot tier and the key filter
 * know of another process's writes may be this much older. Stores of this process on the same file
 * tell each other at once.
 */
export const OTHER_WRITER_CHECK_MS = 1

/**
 * SQLite's data_version of one connection (it changes whenever another connection commits), read at
 * most once every OTHER_WRITER_CHECK_MS, whoever asks.
 */
export class DataVersion {
  readonly #read: () => number
  #version = 0
  #readMs = Number.NEGATIVE_INFINITY

  constructor(read: () => number) {
    this.#read = read
  }

  /** As read at most OTHER_WRITER_CHECK_MS ago. */
  recent(): number {
    return performance.now() - this.#readMs < OTHER_WRITER_CHECK_MS ? this.#version : this.now()
  }

  /** As read now. */
  now(): number {
    this.#readMs = performance.now()
    this.#version = this.#read()
    return this.#version
  }

  /** One reader's view: whether another connection committed since it last looked. */
  watch(): VersionWatch {
    return new VersionWatch(this)
  }
}

export class VersionWatch {
  readonly #source: DataVersion
  #seen: number

  constructor(source: DataVersion) {
    this.#source = source
    this.#seen = source.recent()
  }

  /** True once for each change seen, at most OTHER_WRITER_CHECK_MS late. */
  changed(): boolean {
    const version = this.#source.recent()
    if (version === this.#seen) return false
    this.#seen = version
    return true
  }

  /** Looks now: a commit after this is a change. */
  fromNow(): void {
    this.#seen = this.#source.now()
  }
}
