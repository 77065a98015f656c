import { readdir, readFile } from 'node:fs/promises'
import { request } from 'node:http'
import { describe, expect, it } from 'vitest'
import { statFields } from '../../bench/lib/proc.js'
import { backendsConfig } from '../../src/backends/connections.js'
import { parseConfig } from '../../src/config.js'
import { errors } from '../../src/errors.js'
import { PoolAbort, ThreadPool, type ThreadPoolOptions } from '../../src/placement/pool.js'
import type { RunOutcome } from '../../src/placement/types.js'
import type { AnyTask } from '../../src/tasks/types.js'
import { build, startServer, waitFor } from '../helpers.js'
import { NO_SHEDDING as SERVER_NO_SHEDDING } from '../support/server-process.js'

const job = (task: string, input: unknown): { method: 'POST', url: string, payload: object } =>
  ({ method: 'POST', url: '/jobs', payload: { task, input } })

// These run a real Piscina pool, loading dist/src/placement/worker.js (npm test builds first).
describe('jobs on the pool', () => {
  it('runs CPU jobs on pool threads, never on the event loop, in hybrid', async () => {
    const app = await build({ MODE: 'hybrid', PROCESSES: '1', THREADS: '2' })
    const answers = await Promise.all(Array.from({ length: 6 }, () => app.inject(job('fib', { n: 22 }))))
    for (const res of answers) {
      expect(res.statusCode).toBe(200)
      expect(res.json()).toMatchObject({ result: 17711, ranOn: { pid: process.pid, via: 'pool' } })
      expect(res.json().ranOn.threadId).toBeGreaterThan(0)
    }
    const sleep = await app.inject(job('sleep', { ms: 1 }))
    expect(sleep.json().ranOn).toEqual({ pid: process.pid, threadId: 0, via: 'event-loop' })
  })

  it('reports the share of its threads\' time spent running jobs since it started (pool_utilization)', async () => {
    const before = performance.now()
    const app = await build({ MODE: 'hybrid', PROCESSES: '1', THREADS: '1' })
    for (let i = 0; i < 10; i++) expect((await app.inject(job('spin', { ms: 20 }))).statusCode).toBe(200)
    const elapsedMs = performance.now() - before
    const text = (await app.inject('/metrics')).body
    const utilization = Number(/^pool_utilization\{pid="\d+"\} ([\d.e-]+)$/m.exec(text)?.[1])
    // 200 ms of runs at least, on one thread, within no more than the test's time since before the
    // pool was made: 0.29-0.39 in three runs by hand. Piscina 5's own figure, which /metrics read
    // before, was 0.0008 for a thread busy most of the time at twice its capacity.
    expect(utilization).toBeGreaterThanOrEqual(200 / elapsedMs)
    expect(utilization).toBeLessThanOrEqual(1)
  })

  it('holds one thread per I/O job in threads mode: capacity equals threads', async () => {
    const app = await build({ MODE: 'threads', THREADS: '2', MAX_QUEUE: '0' })
    const answers = await Promise.all(Array.from({ length: 3 }, () => app.inject(job('sleep', { ms: 400 }))))
    const statuses = answers.map((r) => r.statusCode).sort()
    expect(statuses).toEqual([200, 200, 503])
    const ok = answers.filter((r) => r.statusCode === 200).map((r) => r.json())
    expect(ok.every((a) => a.ranOn.via === 'pool' && a.ranOn.threadId > 0)).toBe(true)
    expect(new Set(ok.map((a) => a.ranOn.threadId)).size).toBe(2)
  })

  it('lets a CPU pool\'s threads started for a burst go once idle, and keeps every thread of a pool of I/O jobs', async () => {
    const burst = async (cpuJobsOnly: boolean): Promise<number[]> => {
      const pool = new ThreadPool({ ...poolOptions({ threads: 3, minThreads: 1 }), cpuJobsOnly, idleThreadMs: 100 })
      try {
        const task = { name: cpuJobsOnly ? 'spin' : 'sleep', kind: cpuJobsOnly ? 'cpu' : 'io' } as AnyTask
        const run = async (): Promise<RunOutcome> => await pool.run(task, { ms: 400 }, new PoolAbort())
        const jobs = Promise.all([run(), run(), run()])
        await new Promise((resolve) => setTimeout(resolve, 200))
        const during = pool.threads
        await jobs
        await new Promise((resolve) => setTimeout(resolve, 600))
        return [during, pool.threads]
      } finally {
        await pool.close()
      }
    }
    // A CPU pool may hand a job to a busy thread (it pipelines) rather than start one for it.
    const [cpuDuring, cpuAfter] = await burst(true)
    expect(cpuDuring).toBeGreaterThan(1)
    expect(cpuAfter).toBe(1)
    expect(await burst(false)).toEqual([3, 3])
  })

  it('sheds a job past MAX_QUEUE at once with 503 OVERLOADED and Retry-After', async () => {
    const app = await build({ MODE: 'hybrid', PROCESSES: '1', THREADS: '1', MAX_QUEUE: '1' })
    const answers = await Promise.all(Array.from({ length: 4 }, () => app.inject(job('spin', { ms: 200 }))))
    const shed = answers.filter((r) => r.statusCode === 503)
    expect(answers.filter((r) => r.statusCode === 200)).toHaveLength(2)
    expect(shed).toHaveLength(2)
    for (const res of shed) {
      expect(res.headers['retry-after']).toBe('1')
      expect(res.json()).toMatchObject({ statusCode: 503, code: 'OVERLOADED', error: 'Service Unavailable' })
    }
    // The queue drains and the next job is admitted.
    expect((await app.inject(job('fib', { n: 5 }))).statusCode).toBe(200)
  })

  it('answers a CPU job past JOB_TIMEOUT_MS with 504, kills its thread, and serves the next job on a fresh one', async () => {
    const app = await build({ MODE: 'hybrid', PROCESSES: '1', THREADS: '1', JOB_TIMEOUT_MS: '1500' })
    // A job that waits for a thread to start is timed from its arrival, and on a busy machine a
    // start can itself take longer than JOB_TIMEOUT_MS (that job is answered 504 too): the first
    // job, and the one after the terminated thread, are sent until a started thread answers them.
    const answered = async (n: number): Promise<{ result: number, ranOn: { threadId: number } }> => {
      let body: any
      await waitFor(async () => {
        const res = await app.inject(job('fib', { n }))
        body = res.json()
        return res.statusCode === 200
      }, 20_000)
      return body
    }
    const before = (await answered(5)).ranOn.threadId
    const stuck = await app.inject(job('spin', { ms: 10_000 }))
    expect(stuck.statusCode).toBe(504)
    expect(stuck.json()).toMatchObject({ code: 'TIMEOUT', message: 'Job did not finish within 1500 ms' })
    const next = await answered(10)
    expect(next.result).toBe(55)
    // The only thread was busy for 10 s more had it not been terminated: a new thread answered.
    expect(next.ranOn.threadId).not.toBe(before)
  }, 30_000)

  it('aborts an I/O job holding a pool thread past JOB_TIMEOUT_MS', async () => {
    const app = await build({ MODE: 'threads', THREADS: '1', JOB_TIMEOUT_MS: '1000' })
    const stuck = await app.inject(job('sleep', { ms: 30_000 }))
    expect(stuck.statusCode).toBe(504)
    const next = await app.inject(job('sleep', { ms: 1 }))
    expect(next.statusCode).toBe(200)
    expect(next.json().ranOn.via).toBe('pool')
  })

  it.runIf(process.platform === 'linux')('lowers its threads\' priority to THREAD_NICE, never the event loop\'s', async () => {
    /** Each thread's nice value (field 19 of /proc/PID/task/TID/stat), by thread id. */
    const niceOf = async (pid: number): Promise<Map<number, number>> => {
      const out = new Map<number, number>()
      for (const tid of await readdir(`/proc/${pid}/task`)) {
        out.set(Number(tid), Number(statFields(await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8'))[16]))
      }
      return out
    }
    for (const [env, nice] of [[{ THREAD_NICE: '10' }, 10], [{ THREAD_NICE: '4' }, 4], [{}, 0]] as const) {
      const server = await startServer({ MODE: 'hybrid', PROCESSES: '1', THREADS: '2', ...env })
      try {
        const body = JSON.stringify({ task: 'fib', input: { n: 20 } })
        const answers = await Promise.all([1, 2].map(async () => await fetch(`${server.url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })))
        expect(answers.map((a) => a.status)).toEqual([200, 200])
        const pid = server.proc.pid as number
        const threads = await niceOf(pid)
        expect(threads.get(pid)).toBe(0) // the event loop
        const lowered = [...threads.values()].filter((n) => n !== 0)
        expect(lowered).toEqual(nice === 0 ? [] : [nice, nice]) // the pool's two threads, and no other
      } finally {
        await server.stop()
      }
    }
  }, 30_000)

  it('keeps the threads it is starting when the I/O jobs waiting for them are cancelled', async () => {
    // Clients that leave while a growing pool starts threads for their jobs: Piscina, told to abort
    // a job it has handed to a thread still starting, terminates that thread; the pool then lost its
    // new threads as fast as it started them (the matrix's `threads` cells read 0 jobs/s).
    // Shedding off: refusals are not what this test is about, and a loop busy starting six threads
    // on a loaded machine may refuse one of the 8 requests, which would leave the pool short of 8
    // (a fresh-clone CI run of 2026-12-06 did not see 8 within 5 s; its cause was not established).
    const server = await startServer({ MODE: 'threads', THREADS: '8', ...SERVER_NO_SHEDDING })
    try {
      const threads = async (): Promise<number> =>
        Number(/^pool_threads\{[^}]*\} (\S+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1])
      expect(await threads()).toBe(2) // minThreads: the cores
      const body = JSON.stringify({ task: 'sleep', input: { ms: 300 } })
      const sent = Array.from({ length: 8 }, () => {
        const req = request(`${server.url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' } })
        req.on('error', () => {})
        req.end(body)
        return req
      })
      // Every job has reached the pool, which starts a thread for each (pool_threads counts those
      // starting); a fixed 30 ms was not always enough for a busy server to read all 8 requests.
      await waitFor(async () => await threads() === 8, 10_000, 5)
      for (const req of sent) req.destroy()
      await waitFor(async () => await threads() === 8, 10_000, 100)
      await new Promise((resolve) => setTimeout(resolve, 1000))
      expect(await threads()).toBe(8)
      const after = await fetch(`${server.url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      expect(after.status).toBe(200)
    } finally {
      await server.stop()
    }
  }, 30_000)

  it('runs a batch across the pool and reports each job\'s own queue wait', async () => {
    const app = await build({ MODE: 'threads', THREADS: '2' })
    const res = await app.inject({ method: 'POST', url: '/jobs/batch', payload: { jobs: Array.from({ length: 20 }, (_, i) => ({ task: 'fib', input: { n: i } })) } })
    const { results } = res.json() as { results: Array<Record<string, any>> }
    expect(results.map((r) => r.result)).toEqual(
      [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181]
    )
    expect(results.every((r) => r.ok && r.ranOn.via === 'pool')).toBe(true)
  })
})

interface PoolOptions {
  /** Threads: one by default, as hybrid's pools have on a machine with a process per core. */
  threads?: number
  /** Threads started at once: all of them by default. */
  minThreads?: number
  /** None by default. */
  shedding?: { targetMs: number, intervalMs: number }
  /** Load the `fault` task. */
  faultTasks?: boolean
}

const NO_SHEDDING = { targetMs: 0, intervalMs: 100 }

/** A pool in process, of CPU jobs alone, as hybrid's pools are (it pipelines with one thread). */
const newPool = (options: PoolOptions): ThreadPool => new ThreadPool(poolOptions(options))

function poolOptions (
  { threads = 1, minThreads = threads, shedding = NO_SHEDDING, faultTasks = false }: PoolOptions
): ThreadPoolOptions {
  return {
    minThreads,
    maxThreads: threads,
    maxQueue: 100,
    heapMb: 64,
    cpuJobsOnly: true,
    shedding,
    workerData: {
      nice: 0, faultTasks, upstreamUrl: undefined, backends: backendsConfig(parseConfig({ MODE: 'hybrid' })), logLevel: 'silent'
    }
  }
}
const spin = { name: 'spin', kind: 'cpu' } as AnyTask
const fib = { name: 'fib', kind: 'cpu' } as AnyTask

/** The thread a short job ran on. */
const threadOf = async (pool: ThreadPool): Promise<number | undefined> =>
  (await pool.run(fib, { n: 5 }, new PoolAbort())).threadId

/** Runs `use` with a pool (of one thread by default), closed after it whatever happens. */
async function withPool (use: (pool: ThreadPool) => Promise<void>, options: PoolOptions = {}): Promise<void> {
  const pool = newPool(options)
  try {
    await use(pool)
  } finally {
    await pool.close()
  }
}

// What CPU_JOBS=auto learns the pool's round trip from (src/placement/auto-rule.ts).
describe('the crossing to a pool thread', () => {
  it('is timed for a job that finds a thread free, with how long that thread had idled; not for one that waited', async () => {
    await withPool(async (pool) => {
      // A probe runs no task: it crosses and comes back (the first one waits for the thread to start).
      for (let i = 0; i < 3; i++) expect(await pool.probe()).toBeGreaterThanOrEqual(0)
      const run = async (): Promise<RunOutcome> => await pool.run(fib, { n: 20 }, new PoolAbort())
      const [first, second] = await Promise.all([run(), run()])
      expect(first.result).toBe(6765)
      expect(first.crossing?.handOffMs).toBeGreaterThanOrEqual(0)
      expect(first.crossing?.threadIdleMs).toBeGreaterThanOrEqual(0)
      expect(first.crossing?.threadIdleMs).toBeLessThan(Infinity)
      // The second was handed to the busy thread (the pool pipelines): no crossing of its own.
      expect(second.result).toBe(6765)
      expect(second.crossing).toBeUndefined()
      await new Promise((resolve) => setTimeout(resolve, 100))
      const later = await run()
      expect(later.crossing?.threadIdleMs).toBeGreaterThanOrEqual(90)
    })
  })
})

describe('admission to the pool\'s line', () => {
  it('judges a job by how long it would wait, not only by how long the oldest has waited', async () => {
    // A burst arrives at once: the oldest waiting job is a few microseconds old when the last one
    // arrives, yet the last would wait for all the others' runs. Allowed a wait of 100 ms (the
    // burst allowance: the line has not stood over its target yet), with jobs of 20 ms, only
    // those that would start within it are admitted.
    await withPool(async (pool) => {
      for (let i = 0; i < 3; i++) await pool.run(spin, { ms: 20 }, new PoolAbort()) // a job's run is learnt
      const run = async (): Promise<RunOutcome> => await pool.run(spin, { ms: 20 }, new PoolAbort())
      const burst = await Promise.allSettled(Array.from({ length: 20 }, run))
      const admitted = burst.filter((r) => r.status === 'fulfilled').length
      const refused = burst.filter((r) => r.status === 'rejected')
      expect(refused.every((r) => (r.reason as { code?: string }).code === 'OVERLOADED')).toBe(true)
      // The one that found the thread free, and about 100 / 20 behind it; never all 20.
      expect(admitted).toBeGreaterThanOrEqual(2)
      expect(admitted).toBeLessThanOrEqual(8)
    }, { shedding: { targetMs: 50, intervalMs: 100 } })
  })
})

// A thread costs far more to start than a short job costs to finish (ThreadPool.cancelGraceMs).
describe('a CPU job whose client went away', () => {
  /** Runs `ms` of spin and cancels it 20 ms in: what the run was answered, and how long the pool held its thread. */
  async function cancelSpin (pool: ThreadPool, ms: number): Promise<{ reason: unknown, heldMs: number }> {
    const abort = new PoolAbort()
    const startedAt = performance.now()
    const running = pool.run(spin, { ms }, abort)
    await new Promise((resolve) => setTimeout(resolve, 20))
    abort.abort(new errors.CANCELLED())
    const reason = await running.then(() => 'answered', (err: unknown) => err)
    return { reason, heldMs: performance.now() - startedAt }
  }

  it('keeps its thread when the job ends within the time a thread takes to start; its result is dropped', async () => {
    await withPool(async (pool) => {
      const before = await threadOf(pool)
      const graceMs = pool.cancelGraceMs
      expect(graceMs).toBeGreaterThan(0) // measured on the first thread
      // A job that needs a third of the grace after its client left ends by itself.
      const { reason } = await cancelSpin(pool, 20 + graceMs / 3)
      expect(reason).toMatchObject({ code: 'CANCELLED' })
      expect(await threadOf(pool)).toBe(before)
    })
  })

  it('terminates the thread of a job still running when the grace is over', async () => {
    await withPool(async (pool) => {
      const before = await threadOf(pool)
      const graceMs = pool.cancelGraceMs
      const { reason, heldMs } = await cancelSpin(pool, 10_000)
      expect(reason).toMatchObject({ code: 'CANCELLED' })
      expect(heldMs).toBeGreaterThanOrEqual(20 + graceMs - 1) // timers may fire up to 1 ms early
      expect(heldMs).toBeLessThan(5_000) // not held for the job's 10 s
      expect(await threadOf(pool)).not.toBe(before)
    })
  })

  it('is terminated at once on a timeout', async () => {
    await withPool(async (pool) => {
      const before = await threadOf(pool)
      const abort = new PoolAbort()
      const running = pool.run(spin, { ms: 10_000 }, abort)
      await new Promise((resolve) => setTimeout(resolve, 20))
      abort.abort(new errors.TIMEOUT(20))
      await expect(running).rejects.toMatchObject({ code: 'TIMEOUT' })
      expect(await threadOf(pool)).not.toBe(before)
    })
  })
})

// A thread of a pipelining pool is handed its next job while it runs one (src/placement/tickets.ts).
describe('a CPU job handed to a thread behind another', () => {
  it('never begins if it is cancelled first: the thread skips it and the job before it is answered', async () => {
    await withPool(async (pool) => {
      const before = await threadOf(pool)
      const running = pool.run(spin, { ms: 300 }, new PoolAbort())
      const abort = new PoolAbort()
      const behind = pool.run(fib, { n: 20 }, abort)
      await new Promise((resolve) => setTimeout(resolve, 20))
      abort.abort(new errors.CANCELLED())
      await expect(behind).rejects.toMatchObject({ code: 'CANCELLED' })
      expect((await running).threadId).toBe(before)
      expect(await threadOf(pool)).toBe(before) // no thread was terminated
    })
  })

  it('is handed again, and answered, when the job before it times out and its thread is terminated', async () => {
    await withPool(async (pool) => {
      const before = await threadOf(pool)
      const abort = new PoolAbort()
      const running = pool.run(spin, { ms: 10_000 }, abort)
      const behind = pool.run(fib, { n: 20 }, new PoolAbort())
      await new Promise((resolve) => setTimeout(resolve, 20))
      abort.abort(new errors.TIMEOUT(20))
      await expect(running).rejects.toMatchObject({ code: 'TIMEOUT' })
      const answered = await behind
      expect(answered.result).toBe(6765)
      expect(answered.threadId).not.toBe(before) // on the thread started in the terminated one's place
    })
  })

  it('is handed again, and answered, when the job before it kills its own thread; that job fails', async () => {
    await withPool(async (pool) => {
      const before = await threadOf(pool)
      const exiting = pool.run({ name: 'fault', kind: 'cpu' } as AnyTask, { mode: 'exit' }, new PoolAbort())
      const behind = pool.run(fib, { n: 20 }, new PoolAbort())
      await expect(exiting).rejects.toThrow()
      const answered = await behind
      expect(answered.result).toBe(6765)
      expect(answered.threadId).not.toBe(before)
    }, { faultTasks: true })
  })

  // The event loop is held while the thread is handed both jobs. Whether the thread reads them
  // together depends on how soon it wakes (often, not always, here): each test tries five times.
  const holdTheLoop = (ms: number): void => {
    const until = performance.now() + ms
    while (performance.now() < until);
  }
  const fault = { name: 'fault', kind: 'cpu' } as AnyTask
  const TRIES = 5

  it('does not hold the answer of the job before it while it runs, when the thread read both at once', async () => {
    await withPool(async (pool) => {
      for (let i = 0; i < TRIES; i++) {
        await threadOf(pool)
        const abort = new PoolAbort()
        const stop = setTimeout(() => abort.abort(new errors.TIMEOUT(2000)), 2000)
        const shortAnsweredFirst = pool.run(fib, { n: 20 }, new PoolAbort()).then(() => !abort.aborted)
        const looping = pool.run(fault, { mode: 'loop' }, abort)
        holdTheLoop(50)
        // Held behind the job that loops, the short job's answer would come only when that one is stopped.
        expect(await shortAnsweredFirst).toBe(true)
        clearTimeout(stop)
        abort.abort(new errors.TIMEOUT(0))
        await expect(looping).rejects.toMatchObject({ code: 'TIMEOUT' })
      }
    }, { faultTasks: true })
  })

  it('answers the job before one that kills its thread, when the thread read both at once', async () => {
    await withPool(async (pool) => {
      for (let i = 0; i < TRIES; i++) {
        await threadOf(pool)
        const ending = pool.run(fib, { n: 20 }, new PoolAbort())
        const exiting = pool.run(fault, { mode: 'exit' }, new PoolAbort())
        holdTheLoop(50)
        await expect(exiting).rejects.toThrow()
        expect((await ending).result).toBe(6765)
      }
    }, { faultTasks: true })
  })

  it('is recalled from a busy thread in a pool of several, and run on the thread that frees first', async () => {
    await withPool(async (pool) => {
      await Promise.all([threadOf(pool), threadOf(pool)]) // both threads up
      const fib20 = async (): Promise<RunOutcome> => await pool.run(fib, { n: 20 }, new PoolAbort())
      let longEnded = false
      const long = pool.run(spin, { ms: 1_000 }, new PoolAbort()).finally(() => { longEnded = true })
      const short = await Promise.all(Array.from({ length: 6 }, fib20))
      // Those handed behind the long job were recalled: they all ran on the other thread before it ended.
      expect(longEnded).toBe(false)
      expect(new Set(short.map((r) => r.threadId)).size).toBe(1)
      await long
      // The recalled jobs' cells came back once the long job's thread skipped them: a full load runs.
      const all = await Promise.all(Array.from({ length: 40 }, fib20))
      expect(all.every((r) => r.result === 6765)).toBe(true)
    }, { threads: 2 })
  })
})
