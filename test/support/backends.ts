/**
 * Throwaway PostgreSQL and Redis servers for the tests and the benchmark: a temporary data
 * directory, a free loopback port, started and stopped here (and restartable on the same data, to
 * test a backend going down and coming back). They need Debian's `postgresql` and `redis-server`
 * packages, which `.ci/run` installs.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { chown, mkdtemp, rm } from 'node:fs/promises'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stopOnSignal } from './stop-on-signal.js'

export interface BackendServer {
  url: string
  port: number
  /** Stops the server (its data stays); `start` brings it back on the same port. */
  stop: () => Promise<void>
  start: () => Promise<void>
  /** Stops it and removes its data. */
  destroy: () => Promise<void>
  /** The server's process id while it runs (a benchmark reads its CPU time). */
  pid: () => number | undefined
}

export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

function which (name: string, extra: string[] = []): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...extra]) {
    if (dir !== '' && existsSync(join(dir, name))) return join(dir, name)
  }
  return undefined
}

function postgresBinDirs (): string[] {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return []
  return readdirSync(root).sort().reverse().map((v) => join(root, v, 'bin'))
}

/** Whether this machine can run the throwaway servers. */
export function backendsAvailable (): { postgres: boolean, redis: boolean } {
  return { postgres: which('initdb', postgresBinDirs()) !== undefined && which('postgres', postgresBinDirs()) !== undefined, redis: which('redis-server') !== undefined }
}

/** PostgreSQL refuses to run as root: as root, run it as the `postgres` user the package created. */
function postgresUser (): { uid: number, gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'))
  if (line === undefined) throw new Error('running as root needs a "postgres" user to run PostgreSQL as')
  const [, , uid, gid] = line.split(':')
  return { uid: Number(uid), gid: Number(gid) }
}

async function waitForLine (proc: ChildProcess, pattern: RegExp, what: string, timeoutMs: number): Promise<void> {
  let output = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { cleanup(); reject(new Error(`${what} did not start in ${timeoutMs} ms: ${output.slice(-2000)}`)) }, timeoutMs)
    const onData = (d: Buffer): void => {
      output += d.toString()
      if (pattern.test(output)) { cleanup(); resolve() }
    }
    const onExit = (code: number | null): void => { cleanup(); reject(new Error(`${what} exited with ${code}: ${output.slice(-2000)}`)) }
    const cleanup = (): void => {
      clearTimeout(timer)
      proc.stdout?.off('data', onData)
      proc.stderr?.off('data', onData)
      proc.off('exit', onExit)
    }
    proc.stdout?.on('data', onData)
    proc.stderr?.on('data', onData)
    proc.once('exit', onExit)
  })
}

async function stopProcess (proc: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
  const exited = once(proc, 'exit')
  proc.kill(signal)
  const kill = setTimeout(() => proc.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(kill)
}

/**
 * Stops a backend's process and removes its directory; registered with the bench's signal handler
 * as soon as the directory exists, so that a signal even while it starts leaves neither behind.
 */
function teardown (dir: string, stop: () => Promise<void>): () => Promise<void> {
  const destroy = async (): Promise<void> => {
    await stop()
    await rm(dir, { recursive: true, force: true })
  }
  const forget = stopOnSignal(destroy)
  return async () => {
    forget()
    await destroy()
  }
}

/** Runs `start`, and on its failure removes what was made for it before the error goes on. */
async function started (start: () => Promise<void>, destroy: () => Promise<void>): Promise<void> {
  try {
    await start()
  } catch (err) {
    await destroy()
    throw err
  }
}

/** A PostgreSQL cluster of its own: initdb into a temporary directory, trust auth on loopback only. */
export async function startPostgres (): Promise<BackendServer> {
  const bin = postgresBinDirs()
  const initdb = which('initdb', bin)
  const postgres = which('postgres', bin)
  if (initdb === undefined || postgres === undefined) throw new Error('PostgreSQL is not installed (apt-get install postgresql)')
  const user = postgresUser()
  const dir = await mkdtemp(join(tmpdir(), 'cm-pg-'))
  let proc: ChildProcess | undefined
  // SIGINT is PostgreSQL's "fast" shutdown: open connections are closed, nothing waits for clients.
  const stop = (): Promise<void> => stopProcess(proc, 'SIGINT')
  const destroy = teardown(dir, stop)
  const data = join(dir, 'data')
  const port = await freePort()
  const start = async (): Promise<void> => {
    proc = spawn(postgres, ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1',
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200'],
    { ...user, env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] })
    await waitForLine(proc, /database system is ready to accept connections/, 'PostgreSQL', 30_000)
  }
  await started(async () => {
    if (user !== undefined) await chown(dir, user.uid, user.gid)
    const init = spawnSync(initdb, ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], { ...user, env: { PATH: process.env.PATH }, encoding: 'utf8' })
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`)
    await start()
  }, destroy)
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, port, pid: () => proc?.pid, start, stop, destroy }
}

/** A Redis server of its own, in memory only (no snapshots, no append-only file). */
export async function startRedis (): Promise<BackendServer> {
  const redis = which('redis-server')
  if (redis === undefined) throw new Error('Redis is not installed (apt-get install redis-server)')
  const dir = await mkdtemp(join(tmpdir(), 'cm-redis-'))
  let proc: ChildProcess | undefined
  const stop = (): Promise<void> => stopProcess(proc, 'SIGTERM')
  const destroy = teardown(dir, stop)
  const port = await freePort()
  const start = async (): Promise<void> => {
    proc = spawn(redis, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      env: { PATH: process.env.PATH },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    await waitForLine(proc, /Ready to accept connections/, 'Redis', 15_000)
  }
  await started(start, destroy)
  return { url: `redis://127.0.0.1:${port}`, port, pid: () => proc?.pid, start, stop, destroy }
}
