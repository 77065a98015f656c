import { Client } from 'undici'
import { setTimeout as sleep } from 'node:timers/promises'
import { performance } from 'node:perf_hooks'
import type { FastifyRequest } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { refusalHoldMs, STRAIGHT_BACK_MS } from '../../src/http/hooks.js'
import { startServer, type RunningServer } from '../helpers.js'

/** refusalHoldMs at `now` (holding for up to 100 ms) for a request on `socket` that began `elapsedMs` before. */
const hold = (socket: object, elapsedMs: number, now: number): number =>
  refusalHoldMs({ raw: { socket }, startedAt: now - elapsedMs } as unknown as FastifyRequest, 100, now)

describe('a refusal to a client that came straight back', () => {
  it('is held for the rest of the interval; a first refusal, or one after a pause, is not', () => {
    const socket = {}
    // The connection's first refusal goes out at once, at 1000.2.
    expect(hold(socket, 0.2, 1000.2)).toBe(0)
    // Its next request began 1 ms after (1001.2) and was refused 0.3 ms into it: held to 100 ms from its start.
    expect(hold(socket, 0.3, 1001.5)).toBeCloseTo(99.7, 9)
    // Sent again as soon as the held refusal was read (it went out at 1101.2): held again.
    expect(hold(socket, 0.4, 1101.2 + 1 + 0.4)).toBeCloseTo(99.6, 9)
    // A timer may fire a millisecond early: a request that began just before the refusal's planned send counts too.
    expect(hold(socket, 0.1, 1201.2 - 0.9 + 0.1)).toBeCloseTo(99.9, 9)
    // Back only after a pause longer than STRAIGHT_BACK_MS: a new job, not a retry, answered at once.
    const sentAt = 1201.2 - 0.9 + 100
    expect(hold(socket, 0.2, sentAt + STRAIGHT_BACK_MS + 1 + 0.2)).toBe(0)
  })

  it('is not held again when it has waited as long already (the pool holds it in a retry storm)', () => {
    const socket = {}
    expect(hold(socket, 0, 500)).toBe(0)
    expect(hold(socket, 130, 501 + 130)).toBe(0)
  })

  it('looks at its own connection only', () => {
    const [a, b] = [{}, {}]
    expect(hold(a, 0, 10)).toBe(0)
    expect(hold(b, 0, 11)).toBe(0) // b's first refusal, 1 ms after a's
    expect(hold(a, 0, 12)).toBe(100)
  })
})

describe('on a real server', () => {
  let server: RunningServer | undefined
  afterEach(async () => { await server?.stop('SIGKILL') })

  it('holds the refusal of a job sent again at once on the same connection, and not one sent after a pause', async () => {
    // One thread and no line (MAX_QUEUE=0): a job that finds the thread busy is refused at once.
    // An interval of 1 s tells a held refusal from one answered at once on any machine.
    server = await startServer({ MODE: 'hybrid', PROCESSES: '1', THREADS: '1', MAX_QUEUE: '0', SHED_INTERVAL_MS: '1000' })
    const busy = new Client(server.url)
    const client = new Client(server.url)
    try {
      // Holds the one thread; it is cut off when the test ends, however it ends.
      busy.request({ method: 'POST', path: '/jobs', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ task: 'spin', input: { ms: 8000 } }) }).catch(() => {})
      const post = async (): Promise<{ status: number, code: string, ms: number }> => {
        const start = performance.now()
        const res = await client.request({ method: 'POST', path: '/jobs', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ task: 'spin', input: { ms: 1 } }) })
        const body = await res.body.json() as { code: string }
        return { status: res.statusCode, code: body.code, ms: performance.now() - start }
      }
      // The thread is taken once a job is refused.
      let first = await post()
      for (let i = 0; first.status !== 503 && i < 50; i++) first = await post()
      expect(first).toMatchObject({ status: 503, code: 'OVERLOADED' })
      // Straight back. On a loaded machine this client may take longer than STRAIGHT_BACK_MS to
      // send again, and that refusal is then, rightly, answered at once: a few tries.
      const again: number[] = []
      for (let i = 0; i < 5 && !again.some((ms) => ms >= 900); i++) {
        const answer = await post()
        expect(answer).toMatchObject({ status: 503, code: 'OVERLOADED' })
        again.push(answer.ms)
      }
      expect(Math.max(...again)).toBeGreaterThanOrEqual(900)
      await sleep(50)
      const afterPause = await post()
      expect(afterPause).toMatchObject({ status: 503, code: 'OVERLOADED' })
      expect(afterPause.ms).toBeLessThan(900)
    } finally {
      await Promise.all([busy.destroy(), client.destroy()])
    }
  }, 30_000)
})
