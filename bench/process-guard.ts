/** Keeps benchmark child processes from outliving the runner that spawned them. */
import { fstatSync } from 'node:fs'
import type { Socket } from 'node:net'

const STDIN_FD = 0

/**
 * Exits as soon as a piped stdin closes: the runner spawns every child with a piped stdin (a pipe,
 * or the socket pair child_process makes), so its end means the runner is gone, even after a SIGKILL.
 * Does not keep the process alive by itself; a no-op when stdin is a terminal, a file or /dev/null.
 */
export function exitWhenParentGone(): void {
  const stdinStat = fstatSync(STDIN_FD)
  if (!stdinStat.isFIFO() && !stdinStat.isSocket()) return
  const stdin = process.stdin as unknown as Socket
  stdin.on('end', () => process.exit(1))
  stdin.on('error', () => process.exit(1))
  stdin.resume()
  stdin.unref()
}
