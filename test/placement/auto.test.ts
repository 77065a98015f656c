import type { FastifyInstance } from 'fastify'
import { describe, expect, it } from 'vitest'
import { build } from '../helpers.js'

const job = (task: string, input: unknown): { method: 'POST', url: string, payload: object } =>
  ({ method: 'POST', url: '/jobs', payload: { task, input } })

/** Sends `count` jobs one after another; where each ran. */
async function vias (app: FastifyInstance, count: number, task: string, input: unknown): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < count; i++) {
    const res = await app.inject(job(task, input))
    expect(res.statusCode).toBe(200)
    out.push(res.json().ranOn.via)
  }
  return out
}

// A real server in this process (PROCESSES=1) with a real Piscina pool: the rule sees real costs.
describe('MODE=auto on a real server', () => {
  it('says so in /health, and answers with where each job really ran', async () => {
    const app = await build({ MODE: 'auto', PROCESSES: '1' })
    expect((await app.inject('/health')).json()).toMatchObject({ mode: 'auto', cpuJobs: 'auto', ioJobs: 'event-loop' })
    const sleep = await app.inject(job('sleep', { ms: 1 }))
    expect(sleep.json().ranOn.via).toBe('event-loop')
  })

  it('ends a trivial task inline and fib 30 on the pool, exploring the other way one job in 32', async () => {
    const app = await build({ MODE: 'auto', PROCESSES: '1' })
    const trivial = await vias(app, 96, 'fib', { n: 1 })
    // Not measured yet: the pool first, then the loop, but for one job in 32 that explores the pool.
    expect(trivial[0]).toBe('pool')
    expect(trivial.slice(32).filter((v) => v === 'inline').length).toBe(62)
    const costly = await vias(app, 12, 'fib', { n: 30 })
    expect(costly.every((v) => v === 'pool')).toBe(true)
    const { auto } = (await app.inject('/tasks')).json()
    // Estimates are kept per size class of the input: n = 1 and n = 30 are told apart.
    expect(auto.tasks['fib[n~4]']).toMatchObject({ placement: 'inline', reason: 'cheap' })
    expect(auto.tasks['fib[n~20]']).toMatchObject({ placement: 'pool', reason: 'costly' })
    expect(auto.poolRoundTripMs).toBeGreaterThan(0)
    const metrics = (await app.inject('/metrics')).body
    expect(metrics).toMatch(/auto_decisions_total\{task="fib",via="inline",reason="cheap"\} \d+/)
    expect(metrics).toMatch(/auto_decisions_total\{task="fib",via="pool",reason="costly"\} \d+/)
    expect(metrics).toMatch(/auto_pool_round_trip_ms\{pid="\d+"\} [\d.e-]+/)
  })

  it('follows a task whose cost jumps with its input, at once, and back', async () => {
    const app = await build({ MODE: 'auto', PROCESSES: '1' })
    expect((await vias(app, 10, 'fib', { n: 1 })).at(-1)).toBe('inline')
    // 2 ns to 8 ms: a size class not measured yet goes to the pool, and stays there.
    expect(await vias(app, 3, 'fib', { n: 30 })).toEqual(['pool', 'pool', 'pool'])
    expect(await vias(app, 3, 'fib', { n: 1 })).toEqual(['inline', 'inline', 'inline'])
    const { auto } = (await app.inject('/tasks')).json()
    expect(auto.tasks['fib[n~20]']).toMatchObject({ placement: 'pool', reason: 'costly', jobs: 3 })
  })
})
