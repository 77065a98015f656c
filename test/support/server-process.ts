import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { performance } from 'node:perf_hooks'
import { projectRoot } from '../../src/paths.js'
import { stopOnSignal } from './stop-on-signal.js'

export const serverFile = `${projectRoot}/dist/src/server.js`

/**
 * The matrix measures what each model can do when pushed past its capacity (a saturated loop, a
 * pool queue seconds long), so its model cells do not shed; `npm run chaos` measures shedding, and
 * the reference figures are measured with the defaults.
 */
export const NO_SHEDDING = Object.freeze({ SHED_TARGET_MS: '0', SHED_LOOP_TARGET_MS: '0' })

/**
 * The environment for a child server: only what the caller sets, and PATH. Nothing of the shell
 * that runs the tests or the bench (vitest's MODE=test, a developer's LOG_LEVEL, NODE_OPTIONS, a
 * DATABASE_URL) can change what a child does or measures.
 */
export function childEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, ...extra }
}

export interface ServerProcess {
  url: string
  proc: ChildProcess
  /** From spawn to the "server listening" line: every worker listening, the delay service up. */
  startMs: number
  /** Every log line the server printed so far, parsed. */
  logs: Array<Record<string, unknown>>
  stderr: () => string
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

/**
 * Starts `node dist/src/server.js` (or another server `file` that logs the same JSON line) on
 * PORT=0 unless given (`nodeArgs` before the file, e.g. --cpu-prof), and resolves once it logs
 * "server listening". The caller stops it. `detached` puts it in a process group of its own (its pid
 * is the group's id), to signal the whole group with `process.kill(-pid, signal)`.
 */
export async function startServer (
  env: Record<string, string> = {},
  timeoutMs = 20_000,
  file = serverFile,
  nodeArgs: readonly string[] = [],
  detached = false
): Promise<ServerProcess> {
  const started = performance.now()
  const proc = spawn(process.execPath, [...nodeArgs, file], {
    env: childEnv({ PORT: '0', LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
    // A process group of its own, which a test can signal whole, as a terminal or systemd does.
    detached
  })
  const forget = stopOnSignal(async () => await stopChild(proc))
  proc.once('exit', forget)
  const logs: Array<Record<string, unknown>> = []
  let stderr = ''
  proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  const url = await listeningAddress(proc, logs, timeoutMs, () => stderr)
  const startMs = performance.now() - started
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => await stopChild(proc, signal)
  return { url, proc, startMs, logs, stderr: () => stderr, stop }
}

/**
 * Reads a server's stdout, JSON lines, into `logs`, and resolves with the address of its "server
 * listening" line; rejects if it exits first, or after `timeoutMs` (and SIGKILLs it), with `stderr()`.
 */
export async function listeningAddress (
  proc: ChildProcess, logs: Array<Record<string, unknown>>, timeoutMs: number, stderr: () => string = () => ''
): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`server did not start in ${timeoutMs} ms: ${stderr()}`))
    }, timeoutMs)
    const exited = (code: number | null): void => { clearTimeout(timer); reject(new Error(`server exited with ${code}: ${stderr()}`)) }
    proc.once('exit', exited)
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>
      try { entry = JSON.parse(line) as Record<string, unknown> } catch { return }
      logs.push(entry)
      if (entry.msg === 'server listening') {
        clearTimeout(timer)
        proc.off('exit', exited)
        resolve(entry.address as string)
      }
    })
  })
}

/** Signals a child and resolves with its exit code once it has exited; SIGKILL after 15 s. */
export async function stopChild (proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode
  const exited = once(proc, 'exit') as Promise<[number | null]>
  proc.kill(signal)
  const kill = setTimeout(() => proc.kill('SIGKILL'), 15_000)
  const [code] = await exited
  clearTimeout(kill)
  return code
}
