import { afterEach, describe, expect, it } from 'vitest'
import { LATENCY_BOUNDS_MS, ProcessSampler, quantileMs } from '../../src/dashboard/sample.js'
import type { View } from '../../src/dashboard/feed.js'
import { build, onNewConnection, startServer, waitFor, type RunningServer } from '../helpers.js'
import { openViews, type ViewStream } from '../support/sse.js'

let server: RunningServer | undefined
let stream: ViewStream | undefined
afterEach(async () => {
  stream?.close()
  await server?.stop('SIGKILL')
  server = undefined
})

const jobsIn = (views: View[], task: string): number =>
  views.flatMap((v) => v.processes)
    .reduce((n, p) => n + Object.values(p.jobs[task] ?? {}).reduce((a, b) => a + b, 0), 0)

describe('the dashboard\'s figures of one process', () => {
  it('buckets latencies eight to a decade and reads a quantile as its bucket\'s upper bound', () => {
    expect(LATENCY_BOUNDS_MS[0]).toBe(0.1)
    expect(LATENCY_BOUNDS_MS[8]).toBe(1)
    expect(LATENCY_BOUNDS_MS[16]).toBe(10)
    expect(LATENCY_BOUNDS_MS.at(-1)).toBe(Number.POSITIVE_INFINITY)
    const buckets = new Array<number>(LATENCY_BOUNDS_MS.length).fill(0)
    buckets[8] = 98 // 98 jobs of up to 1 ms
    buckets[24] = 2 // 2 of up to 100 ms
    expect(quantileMs(buckets, 0.5)).toBe(1)
    expect(quantileMs(buckets, 0.99)).toBe(100)
    expect(quantileMs(new Array<number>(LATENCY_BOUNDS_MS.length).fill(0), 0.5)).toBeNaN()
  })

  it('counts nothing until a sample is asked for, then each interval apart', () => {
    const sampler = new ProcessSampler()
    try {
      sampler.record({ task: 'fib', via: 'inline', outcome: 'ok', totalMs: 0.5 })
      expect(sampler.active).toBe(false)
      expect(sampler.sample().jobs).toEqual({})
      sampler.record({ task: 'fib', via: 'inline', outcome: 'ok', totalMs: 0.5 })
      sampler.record({ task: 'fib', via: 'pool', outcome: 'ok', totalMs: 3 })
      sampler.record({ task: 'fib', via: 'pool', outcome: 'TIMEOUT' })
      sampler.refused('OVERLOADED')
      const s = sampler.sample()
      expect(s.jobs).toEqual({ fib: { inline: 1, pool: 1 } })
      expect(s.errors).toEqual({ TIMEOUT: 1, OVERLOADED: 1 })
      expect(quantileMs(s.latency, 0.5)).toBe(0.562) // 0.5 ms falls in the bucket up to 10^(-2/8) ms
      expect(s.pid).toBe(process.pid)
      expect(sampler.sample().jobs).toEqual({}) // the next interval starts empty
    } finally {
      sampler.stop()
    }
  })
})

describe('GET /dashboard/events, on real servers', () => {
  it('streams a view a second of every worker, counting exactly the jobs sent, whichever worker serves the stream', async () => {
    server = await startServer({ MODE: 'hybrid', PROCESSES: '2' })
    stream = await openViews(server.url)
    expect(stream.status).toBe(200)
    expect(stream.contentType).toMatch(/^text\/event-stream/)
    const first = await stream.next((v) => v.processes.length === 2)
    expect(first.config).toMatchObject({ mode: 'hybrid', processes: 2, cpuJobs: 'pool', shedding: true, auth: false })
    const workers = new Set(first.processes.map((p) => p.pid))
    expect(workers.size).toBe(2)
    // New connections, so that both workers answer some.
    const ranOn = new Set<number>()
    for (let i = 0; i < 40; i++) {
      const res = await onNewConnection(server.url, 'POST', '/jobs', JSON.stringify({ task: 'fib', input: { n: 5 } }))
      expect(res.status).toBe(200)
      ranOn.add((JSON.parse(res.text) as { ranOn: { pid: number } }).ranOn.pid)
    }
    await waitFor(() => jobsIn(stream?.views ?? [], 'fib') >= 40, 10_000)
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(jobsIn(stream.views, 'fib')).toBe(40)
    for (const pid of ranOn) expect(workers.has(pid)).toBe(true)
    const views = stream.views
    expect(views.map((v) => v.seq)).toEqual(views.map((_, i) => views[0]!.seq + i))
    const latencies = views.flatMap((v) => v.processes).reduce((n, p) => n + p.latency.reduce((a, b) => a + b, 0), 0)
    expect(latencies).toBe(40)
    const last = views.at(-1) as View
    expect(last.processes.every((p) => p.pool?.maxThreads === 1 && p.loop.utilization >= 0)).toBe(true)
  }, 30_000)

  it('shows a SIGKILLed worker as died, and its replacement as started, within seconds', async () => {
    server = await startServer({ MODE: 'processes', PROCESSES: '2' })
    stream = await openViews(server.url)
    const first = await stream.next((v) => v.processes.length === 2)
    // The worker that does not serve the stream: the one that does takes its stream with it (a
    // browser's EventSource then reconnects, which the page test shows).
    const victim = first.processes.find((p) => p.pid !== stream?.servedBy)?.pid as number
    process.kill(victim, 'SIGKILL')
    const died = await stream.next((v) => v.events.some((e) => e.what === 'died' && e.pid === victim), 10_000)
    expect(died.events.find((e) => e.pid === victim)?.how).toBe('SIGKILL')
    const replaced = await stream.next((v) => v.processes.length === 2 && v.processes.every((p) => p.pid !== victim),
      15_000)
    // The first view also told of the two workers' starts; after the kill, one more: the replacement's
    // (once it listens, which may be a view after it first sends its figures).
    const isNew = (pid: number): boolean => !first.processes.some((p) => p.pid === pid)
    const replacement = replaced.processes.map((p) => p.pid).filter(isNew)
    expect(replacement).toHaveLength(1)
    await stream.next((v) => v.events.some((e) => e.what === 'started' && isNew(e.pid)), 10_000)
    const started = stream.views.flatMap((v) => v.events).filter((e) => e.what === 'started').map((e) => e.pid)
    expect(started.filter(isNew)).toEqual(replacement)
  }, 40_000)

  it('is closed by a drain: SIGTERM with a page open exits 0, not at the drain\'s deadline', async () => {
    server = await startServer({ MODE: 'event-loop' })
    stream = await openViews(server.url)
    await stream.next(() => true)
    expect(await server.stop('SIGTERM')).toBe(0)
  }, 40_000)
})

describe('the dashboard with AUTH_TOKEN set', () => {
  it('needs the token for the page, the stream and the matrix (as ?token=), not for its scripts', async () => {
    const app = await build({ AUTH_TOKEN: 'sesame' })
    try {
      for (const url of ['/dashboard', '/dashboard/events', '/dashboard/matrix', '/dashboard/matrix/charts/throughput.svg']) {
        const res = await app.inject({ url, headers: { accept: 'text/event-stream' } })
        expect(res.statusCode, url).toBe(401)
        expect(res.json().code).toBe('UNAUTHORIZED')
      }
      expect((await app.inject('/dashboard?token=sesame')).statusCode).toBe(200)
      expect((await app.inject('/dashboard?token=wrong')).statusCode).toBe(401)
      const matrix = await app.inject('/dashboard/matrix?token=sesame')
      expect(matrix.statusCode).toBe(200)
      // Its charts are fetched by the browser with the same token.
      expect(matrix.body).toContain('src="/dashboard/matrix/charts/throughput.svg?token=sesame"')
      expect((await app.inject('/dashboard/matrix/charts/throughput.svg?token=sesame')).headers['content-type']).toBe('image/svg+xml')
      expect((await app.inject('/dashboard/assets/uplot.js')).statusCode).toBe(200)
      expect((await app.inject('/dashboard/assets/package.json')).statusCode).toBe(404)
    } finally {
      await app.close()
    }
  })

  it('streams with the token', async () => {
    server = await startServer({ MODE: 'event-loop', AUTH_TOKEN: 'sesame' })
    stream = await openViews(server.url, '?token=sesame')
    expect(stream.status).toBe(200)
    expect((await stream.next(() => true)).config.auth).toBe(true)
  })
})
