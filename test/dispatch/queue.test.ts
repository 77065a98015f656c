import { performance } from 'node:perf_hooks'
import { Redis } from 'ioredis'
import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { waitUntil } from '../helpers.js'
import { backendsAvailable, startRedis, type BackendServer } from '../support/backends.js'
import { startServer, type ServerProcess } from '../support/server-process.js'
import { startWorkerHost, type WorkerHost } from '../support/worker-host.js'

// DISPATCH=bullmq end to end: a throwaway Redis, a server (one process) and `npm run worker` hosts
// as real process trees. Skipped without Debian's redis-server, loudly, unless REQUIRE_BACKENDS=1
// (as .ci/run sets), where it fails.
const runnable = backendsAvailable().redis || process.env.REQUIRE_BACKENDS === '1'
if (!runnable) process.stderr.write('test/dispatch: Redis not installed (apt-get install redis-server); skipping the BullMQ tests\n')

const JOB_TIMEOUT_MS = 20_000

let redis: BackendServer
let keys: Redis
const started: Array<{ stop: (signal?: NodeJS.Signals) => Promise<unknown> }> = []

beforeAll(async () => {
  if (!runnable) return
  redis = await startRedis()
  keys = new Redis(redis.url, { maxRetriesPerRequest: 1, lazyConnect: true })
  keys.on('error', () => {})
  await keys.connect()
}, 30_000)

afterEach(async () => {
  await Promise.all(started.splice(0).map(async (p) => await p.stop('SIGKILL')))
  await keys?.flushall().catch(() => {})
})

afterAll(async () => {
  keys?.disconnect()
  await redis?.destroy()
})

async function startWorker (env: Record<string, string> = {}): Promise<WorkerHost> {
  const host = await startWorkerHost({ REDIS_URL: redis.url, THREADS: '1', JOB_TIMEOUT_MS: String(JOB_TIMEOUT_MS), ...env })
  started.push(host)
  return host
}

async function startDispatching (env: Record<string, string> = {}): Promise<ServerProcess> {
  const server = await startServer({ DISPATCH: 'bullmq', REDIS_URL: redis.url, PROCESSES: '1', JOB_TIMEOUT_MS: String(JOB_TIMEOUT_MS), ...env })
  started.push(server)
  return server
}

interface Answer { status: number, body: any, retryAfter?: string }

async function post (url: string, job: unknown, signal?: AbortSignal): Promise<Answer> {
  const res = await request(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(job), signal })
  const retryAfter = res.headers['retry-after']
  return { status: res.statusCode, body: await res.body.json(), ...(typeof retryAfter === 'string' ? { retryAfter } : {}) }
}

/** Every key of the queue that holds a job or a list of jobs: none once every job is answered. */
async function jobKeys (): Promise<string[]> {
  const all = await keys.keys('bull:cpu-jobs:*')
  // The queue's own bookkeeping: its id counter, its settings, its event stream, the stalled check's
  // lock, and the marker that wakes a waiting worker (left behind when a waiting job is removed).
  return all.filter((k) => !/:(id|meta|events|stalled-check|marker)$/.test(k)).sort()
}

describe.runIf(runnable)('DISPATCH=bullmq: CPU jobs on worker hosts through Redis', () => {
  it('spreads CPU jobs over two worker hosts, keeps I/O jobs on the server, and leaves no job in Redis', async () => {
    const [a, b] = await Promise.all([startWorker(), startWorker()])
    const server = await startDispatching()
    const health = await request(`${server.url}/health`)
    expect(await health.body.json()).toMatchObject({ dispatch: 'bullmq', threads: 0, cpuJobs: 'pool' })
    expect(server.logs.find((l) => l.msg === 'server listening')).toMatchObject({ dispatch: 'bullmq' })

    // 60 jobs in waves of 10 at once: each costs the server's loop a millisecond or two (BullMQ's
    // commands to Redis), and 60 read in one turn held it past the 100 ms burst allowance, so that
    // admission refused the rest of the turn (1 run in 10 or so, before and after 2026-12-04): that
    // is admission doing its work, not dispatch's to test here.
    const answers: Array<Awaited<ReturnType<typeof post>>> = []
    for (let wave = 0; wave < 6; wave++) {
      answers.push(...await Promise.all(Array.from({ length: 10 }, async (_, i) => await post(server.url, { task: 'fib', input: { n: 20 + (i % 5) } }))))
    }
    for (const [i, answer] of answers.entries()) {
      expect(answer.status).toBe(200)
      const n = 20 + (i % 5)
      expect(answer.body.result).toBe([6765, 10946, 17711, 28657, 46368][n - 20])
      expect(answer.body.ranOn).toMatchObject({ host: expect.any(String), via: 'queue', threadId: expect.any(Number) })
    }
    const pids = new Set(answers.map((x) => x.body.ranOn.pid))
    expect(pids).toEqual(new Set([a.pid, b.pid]))

    const io = await post(server.url, { task: 'sleep', input: { ms: 5 } })
    expect(io.body.ranOn).toEqual({ pid: server.proc.pid, threadId: 0, via: 'event-loop' })
    // A task's own refusal crosses as the same coded error.
    expect((await post(server.url, { task: 'fib', input: { n: 'x' } })).body.code).toBe('BAD_INPUT')
    expect(await jobKeys()).toEqual([])
    // Connections, as docs/hosts.md counts them: 2 per worker host; the server's queue and its
    // QueueEvents, and the one its user service opens on the same REDIS_URL; and this test's own.
    const clients = (await keys.client('LIST') as string).trim().split('\n')
    expect(clients).toHaveLength(2 * 2 + 3 + 1)
    expect(clients.filter((c) => c.includes(':w:'))).toHaveLength(2)
  }, 60_000)

  it('runs again on another host the jobs of a host SIGKILLed mid-job, each answered once', async () => {
    const victim = await startWorker()
    const survivor = await startWorker()
    const server = await startDispatching()
    const jobs = Array.from({ length: 6 }, async () => await post(server.url, { task: 'spin', input: { ms: 800 } }))
    // Both hosts have a job running by now.
    expect(await waitUntil(async () => (await keys.llen('bull:cpu-jobs:active')) === 2, 5000)).toBe(true)
    await victim.stop('SIGKILL')
    const answers = await Promise.all(jobs)
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200])
    // The victim's job ran again: every answer is the survivor's.
    expect(new Set(answers.map((a) => a.body.ranOn.pid))).toEqual(new Set([survivor.pid]))
    for (const a of answers) expect(a.body.timing.totalMs).toBeLessThan(JOB_TIMEOUT_MS)
    expect(await jobKeys()).toEqual([])
  }, 60_000)

  it('answers 503 BACKEND_UNAVAILABLE at once while Redis is down, and serves again once it is back', async () => {
    await startWorker()
    const server = await startDispatching()
    expect((await post(server.url, { task: 'fib', input: { n: 5 } })).status).toBe(200)
    await redis.stop()
    try {
      const started = performance.now()
      const down = await post(server.url, { task: 'fib', input: { n: 5 } })
      expect(down).toMatchObject({ status: 503, body: { code: 'BACKEND_UNAVAILABLE' }, retryAfter: '1' })
      // Answered, not left to JOB_TIMEOUT_MS.
      expect(performance.now() - started).toBeLessThan(JOB_TIMEOUT_MS / 4)
      // The server itself stays up: I/O jobs are still served.
      expect((await post(server.url, { task: 'sleep', input: { ms: 1 } })).status).toBe(200)
    } finally {
      await redis.start()
    }
    expect(await waitUntil(async () => (await post(server.url, { task: 'fib', input: { n: 5 } })).status === 200, 15_000)).toBe(true)
  }, 60_000)

  it('answers 503 BACKEND_UNAVAILABLE promptly when no worker host is alive, jobs already waiting too', async () => {
    const only = await startWorker()
    const server = await startDispatching()
    expect((await post(server.url, { task: 'fib', input: { n: 5 } })).status).toBe(200)
    const started = performance.now()
    const waiting = post(server.url, { task: 'spin', input: { ms: 5000 } })
    expect(await waitUntil(async () => (await keys.llen('bull:cpu-jobs:active')) === 1, 5000)).toBe(true)
    await only.stop('SIGKILL')
    expect(await waiting).toMatchObject({ status: 503, body: { code: 'BACKEND_UNAVAILABLE' }, retryAfter: '1' })
    expect(await post(server.url, { task: 'fib', input: { n: 5 } })).toMatchObject({ status: 503, body: { code: 'BACKEND_UNAVAILABLE' } })
    expect(performance.now() - started).toBeLessThan(JOB_TIMEOUT_MS / 4)
    // A host back: served again.
    await startWorker()
    expect(await waitUntil(async () => (await post(server.url, { task: 'fib', input: { n: 5 } })).status === 200, 10_000)).toBe(true)
  }, 60_000)

  it('takes a waiting job out of the queue when its caller goes away', async () => {
    await startWorker()
    const server = await startDispatching()
    const busy = post(server.url, { task: 'spin', input: { ms: 1500 } })
    expect(await waitUntil(async () => (await keys.llen('bull:cpu-jobs:active')) === 1, 5000)).toBe(true)
    const gone = new AbortController()
    const cancelled = post(server.url, { task: 'spin', input: { ms: 1500 } }, gone.signal)
    expect(await waitUntil(async () => (await keys.llen('bull:cpu-jobs:wait')) === 1, 5000)).toBe(true)
    gone.abort()
    await expect(cancelled).rejects.toThrow()
    expect(await waitUntil(async () => (await keys.llen('bull:cpu-jobs:wait')) === 0, 5000)).toBe(true)
    expect((await busy).status).toBe(200)
    // Only the busy job's hash ever remained, and it is gone once answered.
    expect(await jobKeys()).toEqual([])
  }, 60_000)

  it('bounds the jobs a server process has in the queue (MAX_QUEUE): one more is 503 OVERLOADED', async () => {
    await startWorker()
    const server = await startDispatching({ MAX_QUEUE: '2' })
    const admitted = [post(server.url, { task: 'spin', input: { ms: 600 } }), post(server.url, { task: 'spin', input: { ms: 600 } })]
    expect(await waitUntil(async () => (await keys.llen('bull:cpu-jobs:wait')) + (await keys.llen('bull:cpu-jobs:active')) === 2, 5000)).toBe(true)
    expect(await post(server.url, { task: 'fib', input: { n: 1 } })).toMatchObject({ status: 503, body: { code: 'OVERLOADED' }, retryAfter: '1' })
    expect((await Promise.all(admitted)).map((a) => a.status)).toEqual([200, 200])
  }, 60_000)

  it('a worker host drains on SIGTERM: finishes the job it holds, then exits 0', async () => {
    const host = await startWorker()
    const server = await startDispatching()
    const running = post(server.url, { task: 'spin', input: { ms: 600 } })
    expect(await waitUntil(async () => (await keys.llen('bull:cpu-jobs:active')) === 1, 5000)).toBe(true)
    expect(await host.stop('SIGTERM')).toBe(0)
    expect((await running).body.ranOn.pid).toBe(host.pid)
  }, 60_000)
})
