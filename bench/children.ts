/** Spawns the benchmark's child processes and makes sure none, nor any temp file, outlives the parent. */
import { type ChildProcess, spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url))
const ORIGIN_SCRIPT = fileURLToPath(new URL('origin.ts', import.meta.url))
const SIGNAL_EXIT_CODE = 130

const children = new Set<ChildProcess>()

/** Runs a TypeScript file of bench/ in a fresh Node process; stdin and stdout piped, stderr shared. */
export function spawnScript(script: string, args: readonly string[]): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: REPO_ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

function killChildren(): void {
  for (const child of children) child.kill('SIGKILL')
}

/** On exit, Ctrl-C or SIGTERM: kills every child spawned here and removes `tmpDir`. */
export function installCleanup(tmpDir: string): void {
  const cleanUp = () => {
    killChildren()
    rmSync(tmpDir, { recursive: true, force: true })
  }
  process.once('exit', cleanUp)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping\n`)
      process.exit(SIGNAL_EXIT_CODE)
    })
  }
}

/** Everything `child` writes to stdout, once it has exited with status 0. */
export function collectStdout(child: ChildProcess, label: string): Promise<string> {
  const chunks: Buffer[] = []
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => {
      if (code === 0) resolve(Buffer.concat(chunks).toString('utf8'))
      else reject(new Error(`${label} exited with ${signal ?? `code ${code}`}`))
    })
  })
}

function firstLine(child: ChildProcess, label: string): Promise<string> {
  let text = ''
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code, signal) => reject(new Error(`${label} exited early with ${signal ?? code}`)))
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8')
      const end = text.indexOf('\n')
      if (end >= 0) resolve(text.slice(0, end))
    })
  })
}

export interface Origin {
  /** e.g. `http://127.0.0.1:40123` */
  url: string
  stop(): void
}

/** Starts bench/origin.ts in its own process and waits until it listens. */
export async function startOrigin(): Promise<Origin> {
  const child = spawnScript(ORIGIN_SCRIPT, [])
  const line = await firstLine(child, 'origin')
  const { port } = JSON.parse(line) as { port: number }
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') }
}
