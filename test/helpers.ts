import type { FastifyInstance } from 'fastify'
import { afterEach } from 'vitest'
import { buildApp } from '../src/app.js'
import { parseConfig } from '../src/config.js'

export { childEnv, serverFile, startServer, type ServerProcess as RunningServer } from '../bench/lib/server-process.js'

/** A fresh app for one test, from env-style settings, closed after it. */
export async function build (env: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildApp(parseConfig({ LOG_LEVEL: 'silent', ...env }))
  afterEach(() => app.close())
  return app
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
