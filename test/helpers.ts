import { request } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { FastifyInstance } from 'fastify'
import { afterEach } from 'vitest'
import { buildApp } from '../src/app.js'
import { parseConfig } from '../src/config.js'

export { childEnv, serverFile, startServer, type ServerProcess as RunningServer } from './support/server-process.js'

/**
 * Settings for a server that runs in the test's own process. Its event loop is the test client's
 * too, so a test that sends load would see its own work as the server's and be shed: load shedding
 * is off unless a test turns it on (the shedding tests run the server as a child process).
 */
export const IN_PROCESS = Object.freeze({ LOG_LEVEL: 'silent', SHED_TARGET_MS: '0', SHED_LOOP_TARGET_MS: '0' })

/** A fresh app for one test, from env-style settings, closed after it. */
export async function build (env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildApp(parseConfig({ ...IN_PROCESS, ...env }))
  afterEach(() => app.close())
  return app
}

/**
 * One request on a connection of its own (no keep-alive agent), so that a cluster may hand it to
 * any worker. A connection the primary was handing to a worker as it was killed is never answered:
 * it fails after 5 s instead of hanging the test.
 */
export function onNewConnection (url: string, method: 'GET' | 'POST', path: string, body?: string): Promise<{ status: number, text: string }> {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
    const req = request(`${url}${path}`, { method, agent: false, headers }, (res) => {
      let text = ''
      res.on('data', (d: Buffer) => { text += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
    })
    req.on('error', reject)
    req.setTimeout(5_000, () => req.destroy(new Error('no answer in 5 s')))
    req.end(body)
  })
}

/** POSTs one job over a real socket and returns status and parsed body. */
export async function postJob (url: string, task: string, input: unknown): Promise<{ status: number, body: any }> {
  const res = await fetch(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ task, input }) })
  return { status: res.status, body: await res.json() }
}

/**
 * Whether `check` returned true within `timeoutMs`, polling every `everyMs`. Timed on the monotonic
 * clock: this machine's wall clock has stepped forward mid-test (a fresh-clone run failed a 20 s
 * wait after 7.5 s by vitest's own timing), and a deadline read from it ends early.
 */
export async function waitUntil (
  check: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 50
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs
  while (!(await check())) {
    if (performance.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
  return true
}

/** Resolves when `check` returns true, polling; rejects after `timeoutMs` (waitUntil). */
export async function waitFor (
  check: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 50
): Promise<void> {
  if (!(await waitUntil(check, timeoutMs, everyMs))) throw new Error('condition not met in time')
}

/** Whether a process of that id exists (a zombie not yet reaped counts). */
export function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
