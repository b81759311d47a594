/** Real file-system faults for the store tests: a tiny tmpfs (disk full), remounted read-only. */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A mounted tmpfs; `unmount` also removes its mount point. */
export interface Tmpfs {
  dir: string
  remountReadOnly(): void
  unmount(): void
}

/** Mounts a tmpfs of `sizeBytes`, or says why it cannot (not root, no mount(8), no privilege). */
export function mountTmpfs(sizeBytes: number): Tmpfs | { skip: string } {
  if (process.platform !== 'linux') return { skip: `tmpfs needs Linux, this is ${process.platform}` }
  const dir = mkdtempSync(join(tmpdir(), 'undici-cache-tmpfs-'))
  try {
    run(['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir])
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    return { skip: `cannot mount a tmpfs (needs root): ${(error as Error).message.split('\n')[0]}` }
  }
  return {
    dir,
    remountReadOnly: () => run(['-o', 'remount,ro', dir]),
    unmount: () => {
      execFileSync('umount', ['--lazy', dir], { stdio: 'pipe' })
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

function run(args: string[]): void {
  execFileSync('mount', args, { stdio: 'pipe' })
}
