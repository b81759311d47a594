/**
 * Bodies of one chunk or more, kept as plain files in a directory beside the database, one file per
 * entry named by its id (AUTOINCREMENT: never reused). A file is written before its row is complete
 * and removed after its row is gone, so a complete row always has its whole file.
 */
import {
  closeSync,
  fstatSync,
  mkdirSync,
  openSync,
  read,
  readdirSync,
  realpathSync,
  type Stats,
  statSync,
  unlinkSync,
  writevSync,
} from 'node:fs'
import { join, resolve } from 'node:path'

/** Bytes one read of a body file asks for (less for the last piece). */
export const FILE_READ_BYTES = 1024 * 1024

/** Added to the database's path to name its directory of body files. */
export const BODY_DIR_SUFFIX = '-bodies'

/**
 * The body files of one database. Its files are named by entry id only, so they are touched only while
 * the database file at its path is still the one this connection opened: deleted while open and made
 * anew by another process, it numbers its entries from 1 again, in the same directory.
 */
export class BodyFiles {
  readonly dir: string
  readonly #databasePath: string
  /** The database file this connection opened. */
  readonly #database: Stats
  #dirMade = false

  /** Made once the connection to `databasePath` is open. */
  constructor(dir: string, databasePath: string) {
    this.dir = dir
    this.#databasePath = databasePath
    this.#database = statSync(databasePath)
  }

  /** Whether the file at the database's path is still the one this connection opened. */
  #sameDatabase(): boolean {
    try {
      const now = statSync(this.#databasePath, { throwIfNoEntry: false })
      return now !== undefined && now.ino === this.#database.ino && now.dev === this.#database.dev
    } catch {
      return false
    }
  }

  #assertSameDatabase(): void {
    if (!this.#sameDatabase()) {
      throw new Error(
        `undici-cache: ${this.#databasePath} was removed or replaced while open; its body files are not this store's`,
      )
    }
  }

  pathOf(entryId: number): string {
    return join(this.dir, String(entryId))
  }

  /**
   * Creates the file of `entryId` (never over an existing one); returns its descriptor. A directory
   * removed under a running store is made again.
   */
  create(entryId: number): number {
    this.#assertSameDatabase()
    if (!this.#dirMade) this.#makeDir()
    try {
      return openSync(this.pathOf(entryId), 'wx')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      this.#makeDir()
      return openSync(this.pathOf(entryId), 'wx')
    }
  }

  #makeDir(): void {
    mkdirSync(this.dir, { recursive: true })
    this.#dirMade = true
  }

  /** Writes every buffer at the end of the file, looping over short writes. */
  append(fd: number, buffers: Buffer[]): void {
    let pending = buffers.filter((buffer) => buffer.length > 0)
    while (pending.length > 0) {
      let written = writevSync(fd, pending)
      const rest: Buffer[] = []
      for (const buffer of pending) {
        if (written >= buffer.length) written -= buffer.length
        else {
          rest.push(buffer.subarray(written))
          written = 0
        }
      }
      pending = rest
    }
  }

  /** Removes the files of `entryIds`; a file already gone is fine, any other failure is ignored. */
  remove(entryIds: readonly number[]): void {
    if (entryIds.length === 0 || !this.#sameDatabase()) return
    for (const entryId of entryIds) {
      try {
        unlinkSync(this.pathOf(entryId))
      } catch {}
    }
  }

  /**
   * Bytes `startBytes` up to `endBytes` of the body of `entryId` (`sizeBytes` long), read one piece at a
   * time. Opens the file now, so that another process removing it later (a replacement, an eviction)
   * does not break a response already started; throws now when it is missing or has another length
   * (removed before, damaged).
   */
  reader(entryId: number, sizeBytes: number, startBytes: number, endBytes: number): AsyncIterable<Buffer> {
    this.#assertSameDatabase()
    const path = this.pathOf(entryId)
    const fd = unlessGone(entryId, () => openSync(path, 'r'))
    try {
      const size = fstatSync(fd).size
      if (size !== sizeBytes)
        throw lost(new Error(`undici-cache: body file ${path} has ${size} bytes, not ${sizeBytes}`))
    } catch (error) {
      closeSync(fd)
      throw error
    }
    return new OpenedBody(fd, { path, entryId, startBytes, endBytes })
  }

  /** Removes files whose entry row is gone (left by a process killed between the two). */
  removeOrphans(hasRow: (entryId: number) => boolean): void {
    let names: string[]
    try {
      names = readdirSync(this.dir)
    } catch {
      return
    }
    for (const name of names) {
      const entryId = Number(name)
      if (Number.isSafeInteger(entryId) && String(entryId) === name && !hasRow(entryId))
        this.remove([entryId])
    }
  }
}

/** Closes the descriptor of a body or iterator dropped before it closed it, once it is garbage. */
const unclaimed = new FinalizationRegistry<number>((fd) => {
  try {
    closeSync(fd)
  } catch {}
})

/** What a body file reader reads: bytes `startBytes` up to `endBytes` of the file at `path`. */
interface FileRead {
  path: string
  entryId: number
  startBytes: number
  endBytes: number
}

/** A body file opened by reader(): its first iteration reads that descriptor, any later one opens the file again. */
class OpenedBody implements AsyncIterable<Buffer> {
  #fd: number | undefined
  readonly #read: FileRead

  constructor(fd: number, read: FileRead) {
    this.#fd = fd
    this.#read = read
    unclaimed.register(this, fd, this)
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    const fd = this.#fd
    this.#fd = undefined
    unclaimed.unregister(this)
    return new FileBodyIterator(this.#read, fd)
  }
}

/**
 * Reads a body file (or a range of it) front to back into fresh buffers (the caller keeps them). The
 * descriptor (opened at the first `next()` unless given) is closed at the end, on an error, or on
 * `return()`: nothing leaks when the iteration never starts or stops early.
 */
class FileBodyIterator implements AsyncIterator<Buffer> {
  readonly #path: string
  readonly #entryId: number
  /** Where the read ends (exclusive): the file's length, or a range's end. */
  readonly #endBytes: number
  #fd: number | undefined
  /** Bytes of the file asked for so far (read or being read), from its start. */
  #claimedBytes: number
  #readsInFlight = 0
  #ahead: Promise<IteratorResult<Buffer>> | undefined
  #stopped = false

  constructor(read: FileRead, fd?: number) {
    this.#path = read.path
    this.#entryId = read.entryId
    this.#claimedBytes = read.startBytes
    this.#endBytes = read.endBytes
    this.#fd = fd
    // an iterator made and dropped without a step or return() (a stream never read) closes it once garbage
    if (fd !== undefined) unclaimed.register(this, fd, this)
  }

  /** The next piece, asked for ahead while the caller handles this one (two pieces in memory at most). */
  async next(): Promise<IteratorResult<Buffer>> {
    const step = this.#ahead ?? this.#read()
    this.#ahead = undefined
    const result = await step
    if (!result.done && !this.#stopped && this.#claimedBytes < this.#endBytes) {
      this.#ahead = this.#read()
      // A failure is thrown by the next() that takes it, or dropped with the iteration.
      this.#ahead.catch(() => {})
    }
    return result
  }

  /** Each call claims the next piece at once, so calls made without waiting read consecutive pieces. */
  async #read(): Promise<IteratorResult<Buffer>> {
    if (this.#stopped || this.#claimedBytes >= this.#endBytes) return this.#end()
    try {
      if (this.#fd === undefined) {
        this.#fd = unlessGone(this.#entryId, () => openSync(this.#path, 'r'))
        unclaimed.register(this, this.#fd, this)
      }
      const position = this.#claimedBytes
      const buffer = Buffer.allocUnsafe(Math.min(FILE_READ_BYTES, this.#endBytes - position))
      this.#claimedBytes += buffer.length
      this.#readsInFlight += 1
      const readBytes = await readAt(this.#fd, buffer, position).finally(() => {
        this.#readsInFlight -= 1
        this.#closeWhenIdle()
      })
      if (this.#stopped) return DONE
      // A regular file reads short only at its end: it is shorter than its row says.
      if (readBytes < buffer.length) throw new Error(`undici-cache: body file ${this.#path} ended early`)
      return { done: false, value: buffer }
    } catch (error) {
      this.#stop()
      throw error
    }
  }

  /** Stops; resolves once a piece read ahead is back and the descriptor closed. */
  async return(): Promise<IteratorResult<Buffer>> {
    this.#stop()
    await this.#ahead?.catch(() => {})
    this.#ahead = undefined
    return DONE
  }

  #end(): IteratorResult<Buffer> {
    this.#closeWhenIdle()
    return DONE
  }

  /** Ends the iteration early (return(), an error): pieces still being read are dropped. */
  #stop(): void {
    this.#stopped = true
    this.#closeWhenIdle()
  }

  /** Closes the descriptor once no read is in flight and none will follow. */
  #closeWhenIdle(): void {
    const finished = this.#stopped || this.#claimedBytes >= this.#endBytes
    if (this.#fd === undefined || this.#readsInFlight > 0 || !finished) return
    unclaimed.unregister(this)
    closeSync(this.#fd)
    this.#fd = undefined
  }
}

const DONE: IteratorResult<Buffer> = { done: true, value: undefined }

/** The error a body removed by another process (replaced, evicted, deleted) gives, as for chunk rows. */
function goneError(entryId: number, cause: unknown): Error {
  return lost(
    new Error(`undici-cache: body of entry ${entryId} is gone (replaced or evicted while read)`, { cause }),
  )
}

const LOST = Symbol('body file lost')

/** Marks an error that says the body file is missing or of another length (not a passing fault, EMFILE say). */
function lost(error: Error): Error {
  return Object.assign(error, { [LOST]: true })
}

/** Whether reader() threw because the file is missing or of another length: its entry is useless. */
export function isLostBody(error: unknown): boolean {
  return (error as { [LOST]?: boolean } | null)?.[LOST] === true
}

/**
 * The file with symbolic links resolved, by which this process's stores on one file find each other
 * (it exists once the store opened; if not, the absolute path).
 */
export function realFile(path: string): string {
  const absolute = resolve(path)
  try {
    return realpathSync(absolute)
  } catch {
    return absolute
  }
}

/** Runs a file operation; a file that is not there becomes the "gone" error of a removed body. */
function unlessGone<T>(entryId: number, operation: () => T): T {
  try {
    return operation()
  } catch (error) {
    throw (error as NodeJS.ErrnoException).code === 'ENOENT' ? goneError(entryId, error) : error
  }
}

function readAt(fd: number, buffer: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buffer, 0, buffer.length, position, (error, readBytes) =>
      error ? reject(error) : resolve(readBytes),
    )
  })
}
