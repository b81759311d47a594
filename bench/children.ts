/** Spawns the benchmark's child processes and makes sure none, nor any temp file, outlives the parent. */
import { type ChildProcess, spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const SIGNAL_EXIT_CODE = 130
/** The port the origin asks for first, so that its URL, and the keys of pre-filled stores, stay the same. */
export const ORIGIN_PORT = 47_380

/** A path next to this module (computed on use: a bundled copy of it lives elsewhere and never spawns). */
function benchPath(relative: string): string {
  return fileURLToPath(new URL(relative, import.meta.url))
}

const children = new Set<ChildProcess>()

/**
 * Runs a file of bench/ in a fresh Node process, stdin and stdout piped, stderr shared: a `.ts` file
 * through tsx, a bundled `.mjs` file as it is.
 */
export function spawnScript(script: string, args: readonly string[]): ChildProcess {
  const loader = script.endsWith('.ts') ? ['--import', 'tsx'] : []
  const child = spawn(process.execPath, [...loader, script, ...args], {
    cwd: benchPath('..'),
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

/** What a child wrote to stdout, and why it failed if it did not exit with status 0. */
export interface ChildOutput {
  stdout: string
  failure?: string
}

/** Everything `child` writes to stdout, once it has exited. */
export function collectStdout(child: ChildProcess, label: string): Promise<ChildOutput> {
  const chunks: Buffer[] = []
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk))
  return new Promise((resolve) => {
    child.once('error', (error) => resolve({ stdout: '', failure: `${label}: ${error.message}` }))
    child.once('close', (code, signal) => {
      const stdout = Buffer.concat(chunks).toString('utf8')
      if (code === 0) resolve({ stdout })
      else resolve({ stdout, failure: `${label} exited with ${signal ?? `code ${code}`}` })
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

/** Starts bench/origin.ts in its own process and waits until it listens (on ORIGIN_PORT if free). */
export async function startOrigin(): Promise<Origin> {
  const child = spawnScript(benchPath('origin.ts'), ['--port', String(ORIGIN_PORT)])
  const line = await firstLine(child, 'origin')
  const { port } = JSON.parse(line) as { port: number }
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') }
}
