import { describe, expect, it } from 'vitest'
import { build } from '../helpers.js'

const job = (task: string, input: unknown) => ({ method: 'POST' as const, url: '/jobs', payload: { task, input } })

describe('a task that goes wrong on a pool thread', () => {
  it('is not in the catalogue unless FAULT_TASKS=on', async () => {
    const app = await build({ MODE: 'hybrid', PROCESSES: '1', THREADS: '1' })
    const names = (await app.inject({ url: '/tasks' })).json<{ tasks: Array<{ name: string }> }>().tasks.map((t) => t.name)
    expect(names).not.toContain('fault')
    expect((await app.inject(job('fault', { mode: 'throw' }))).json()).toMatchObject({ code: 'UNKNOWN_TASK' })
  })

  it.each([
    ['throws', 'throw', 500, 'TASK_FAILED'],
    ['calls process.exit', 'exit', 500, 'TASK_FAILED'],
    ['runs out of heap (resourceLimits)', 'oom', 500, 'TASK_FAILED'],
    ['loops forever (JOB_TIMEOUT_MS)', 'loop', 504, 'TIMEOUT']
  ])('%s: answered with its code, other jobs unaffected, the pool refilled', async (_what, mode, status, code) => {
    const app = await build({ MODE: 'hybrid', PROCESSES: '1', THREADS: '2', FAULT_TASKS: 'on', THREAD_HEAP_MB: '32', JOB_TIMEOUT_MS: '1500' })
    const pool = app.jobs.pool!
    // Jobs running beside the fault, on the other thread and queued behind it.
    const others = Array.from({ length: 6 }, (_v, i) => app.inject(job('fib', { n: 20 + i })))
    const fault = await app.inject(job('fault', { mode }))
    expect(fault.statusCode).toBe(status)
    expect(fault.json()).toMatchObject({ code, statusCode: status })
    // Fixed text only: nothing of the thread's error leaks to the client.
    expect(JSON.stringify(fault.json())).not.toMatch(/heap|exit|stack|thrown/i)
    for (const other of await Promise.all(others)) expect(other.statusCode).toBe(200)
    const after = await Promise.all(Array.from({ length: 4 }, () => app.inject(job('fib', { n: 15 }))))
    expect(after.map((r) => r.statusCode)).toEqual([200, 200, 200, 200])
    // Back to its minimum of two threads: the one that died (or was terminated) was replaced.
    expect(pool.threads).toBe(2)
  }, 20_000)

  it('on the event loop (CPU_JOBS=inline), a thrown error is TASK_FAILED and the process serves on', async () => {
    const app = await build({ MODE: 'event-loop', FAULT_TASKS: 'on' })
    expect((await app.inject(job('fault', { mode: 'throw' }))).json()).toMatchObject({ statusCode: 500, code: 'TASK_FAILED' })
    expect((await app.inject(job('fib', { n: 10 }))).statusCode).toBe(200)
  })
})
