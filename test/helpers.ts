import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import type { FastifyInstance } from 'fastify'
import { afterEach } from 'vitest'
import { buildApp } from '../src/app.js'
import { parseConfig } from '../src/config.js'
import { projectRoot } from '../src/paths.js'

export const serverFile = `${projectRoot}/dist/src/server.js`

const CONFIG_VARIABLES = ['MODE', 'PROCESSES', 'THREADS', 'CPU_JOBS', 'IO_JOBS', 'PORT', 'HOST', 'JOB_TIMEOUT_MS', 'MAX_QUEUE', 'UPSTREAM_URL', 'LOG_LEVEL']

/** The environment for a child server: this one's, less the server's variables (vitest sets MODE=test), plus `extra`. */
export function childEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const name of CONFIG_VARIABLES) delete env[name]
  return { ...env, ...extra }
}

/** A fresh app for one test, from env-style settings, closed after it. */
export async function build (env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildApp(parseConfig({ LOG_LEVEL: 'silent', ...env }))
  afterEach(() => app.close())
  return app
}

export interface RunningServer {
  url: string
  proc: ChildProcess
  /** Every log line the server printed so far, parsed. */
  logs: Array<Record<string, unknown>>
  stderr: () => string
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

/**
 * Starts `node dist/src/server.js` on a free port and resolves once it logs "server listening".
 * The caller stops it (every test does, in afterEach or finally).
 */
export async function startServer (env: Record<string, string> = {}, timeoutMs = 20_000): Promise<RunningServer> {
  const proc = spawn(process.execPath, [serverFile], {
    env: childEnv({ PORT: '0', LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const logs: Array<Record<string, unknown>> = []
  let stderr = ''
  proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  const lines = createInterface({ input: proc.stdout! })
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), timeoutMs)
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}: ${stderr}`)) })
    lines.on('line', (line) => {
      let entry: Record<string, unknown>
      try { entry = JSON.parse(line) } catch { return }
      logs.push(entry)
      if (entry.msg === 'server listening') { clearTimeout(timer); resolve(entry.address as string) }
    })
  })
  proc.removeAllListeners('exit')
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode
    const exited = once(proc, 'exit') as Promise<[number | null]>
    proc.kill(signal)
    const kill = setTimeout(() => proc.kill('SIGKILL'), 15_000)
    const [code] = await exited
    clearTimeout(kill)
    return code
  }
  return { url, proc, logs, stderr: () => stderr, stop }
}

/** POSTs one job over a real socket and returns status and parsed body. */
export async function postJob (url: string, task: string, input: unknown): Promise<{ status: number, body: any }> {
  const res = await fetch(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ task, input }) })
  return { status: res.status, body: await res.json() }
}

/** Resolves when `check` returns true, polling; rejects after `timeoutMs`. */
export async function waitFor (check: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}
