/** Starts a real, throw-away redis-server on a free 127.0.0.1 port for the Redis tests. */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { accessSync, constants } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'node:test'
import { tempDir } from '../helpers/client.js'

const START_TIMEOUT_MS = 5000
/** Servers still running, killed if the test process exits without stopping them. */
const running = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/** The redis-server binary: REDIS_SERVER, else the first on PATH (or in /usr/sbin, /usr/bin). */
export function findRedisServer(): string | undefined {
  const override = process.env.REDIS_SERVER
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/bin']
  const candidates = override ? [override] : dirs.filter(Boolean).map((dir) => path.join(dir, 'redis-server'))
  return candidates.find(isExecutable)
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/**
 * Why the Redis tests cannot run here, or undefined when they can. In CI (process.env.CI set) a
 * missing redis-server registers a failing test instead: .ci/run must install it.
 */
export function redisSkipReason(): string | undefined {
  if (findRedisServer() !== undefined) return undefined
  const message = 'redis-server not installed: install the Debian package redis-server (or set REDIS_SERVER)'
  if (process.env.CI) {
    test('redis-server is installed', () => {
      throw new Error(`${message}; .ci/run must install redis-server (apt-get install -y redis-server)`)
    })
  }
  return message
}

/** A running redis-server; `kill` and `restart` keep the port, data is not persisted. */
export interface RedisServer {
  port: number
  url: string
  /** Kills the server at once (SIGKILL), as a crash or a dropped connection would. */
  kill(): Promise<void>
  /** Starts a fresh, empty server on the same port. */
  restart(): Promise<void>
  /** Freezes the server (SIGSTOP): connections stay open, nothing answers. */
  pause(): void
  /** Unfreezes a paused server (SIGCONT). */
  resume(): void
  stop(): Promise<void>
}

/** `args`: more redis-server options (`--cluster-enabled yes`, say). */
export async function startRedisServer(args: readonly string[] = []): Promise<RedisServer> {
  const binary = findRedisServer()
  if (binary === undefined) throw new Error('redis-server not installed')
  const port = await freePort()
  const dir = tempDir()
  let child = await launch(binary, port, dir, args)
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGKILL')
    await once(child, 'exit')
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: async () => {
      await kill()
      child = await launch(binary, port, dir, args)
    },
    pause: () => child.kill('SIGSTOP'),
    resume: () => child.kill('SIGCONT'),
    stop: kill,
  }
}

/** A port nothing listens on right now: bind port 0, read the port, close. */
async function freePort(): Promise<number> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

async function launch(
  binary: string,
  port: number,
  dir: string,
  extraArgs: readonly string[],
): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']
  const child = spawn(binary, [...args, '--dir', dir, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  child.on('exit', () => running.delete(child))
  let output = ''
  const collect = (text: Buffer) => {
    output += text.toString()
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  const deadline = Date.now() + START_TIMEOUT_MS
  while (!(await answersPing(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`redis-server did not start on port ${port}:\n${output}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  child.stdout?.off('data', collect).resume()
  child.stderr?.off('data', collect).resume()
  return child
}

/** True when a server on the port replies +PONG to PING. */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    let reply = ''
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (data) => {
      reply += data.toString()
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'))
    })
  })
}
