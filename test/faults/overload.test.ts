import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { openJobSocket, sendFrame } from '../../bench/chaos/bad-inputs.js'
import { startServer, type RunningServer } from '../helpers.js'

let server: RunningServer | undefined
afterEach(async () => { await server?.stop('SIGKILL') })

const spin = JSON.stringify({ task: 'spin', input: { ms: 60 } })

async function post (url: string, body: string): Promise<{ status: number, code?: string, retryAfter?: string }> {
  const res = await request(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, headersTimeout: 10_000 })
  const answer = await res.body.json() as { code?: string }
  return { status: res.statusCode, code: answer.code, retryAfter: res.headers['retry-after'] as string | undefined }
}

describe('load shedding on a busy event loop (@fastify/under-pressure)', () => {
  it('answers 503 OVERLOADED with Retry-After while the loop is saturated, keeps /health up, and recovers', async () => {
    // A single event loop running CPU jobs inline: 4 clients keep it busy all the time.
    server = await startServer({ MODE: 'event-loop', MAX_EVENT_LOOP_UTILIZATION: '0.9', MAX_EVENT_LOOP_DELAY_MS: '0' })
    const url = server.url
    const until = Date.now() + 2_500
    const answers: Array<Awaited<ReturnType<typeof post>>> = []
    const client = async (): Promise<void> => {
      while (Date.now() < until) answers.push(await post(url, spin))
    }
    const health: number[] = []
    const watcher = async (): Promise<void> => {
      while (Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 200))
        health.push((await request(`${url}/health`)).statusCode)
      }
    }
    await Promise.all([client(), client(), client(), client(), watcher()])

    const shed = answers.filter((a) => a.status === 503)
    expect(answers.filter((a) => a.status === 200).length).toBeGreaterThan(0)
    expect(shed.length).toBeGreaterThan(0)
    for (const a of shed) expect(a).toEqual({ status: 503, code: 'OVERLOADED', retryAfter: '1' })
    expect(answers.every((a) => a.status === 200 || a.status === 503)).toBe(true)
    expect(health.length).toBeGreaterThan(0)
    expect(health.every((s) => s === 200)).toBe(true)

    // The loop idles again: after a sample or two, jobs are admitted.
    await new Promise((resolve) => setTimeout(resolve, 800))
    expect(await post(url, spin)).toMatchObject({ status: 200 })
  }, 20_000)

  it('sheds WebSocket frames too while the loop is saturated, and keeps the connection', async () => {
    server = await startServer({ MODE: 'event-loop', MAX_EVENT_LOOP_UTILIZATION: '0.9', MAX_EVENT_LOOP_DELAY_MS: '0' })
    const ws = await openJobSocket(server.url)
    const codes: string[] = []
    const until = Date.now() + 2_000
    let id = 0
    const client = async (): Promise<void> => {
      while (Date.now() < until) codes.push((await sendFrame(ws, Buffer.from(JSON.stringify({ id: id++, task: 'spin', input: { ms: 60 } })), false)).code)
    }
    // Other clients over HTTP keep the loop busy too.
    const busy = async (): Promise<void> => {
      while (Date.now() < until) await post(server!.url, spin)
    }
    await Promise.all([client(), busy(), busy()])
    expect(codes).toContain('OVERLOADED')
    expect(codes).toContain('OK')
    expect(codes.every((c) => c === 'OK' || c === 'OVERLOADED')).toBe(true)
    expect(ws.readyState).toBe(ws.OPEN)
    ws.terminate()
  }, 20_000)
})
