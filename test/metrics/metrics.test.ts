import { afterEach, describe, expect, it } from 'vitest'
import { readFile } from 'node:fs/promises'
import { processTree } from '../../bench/lib/proc.js'
import { build, onNewConnection, startServer, type RunningServer } from '../helpers.js'
import { sum } from '../support/prometheus.js'

describe('GET /metrics', () => {
  it('has the documented metrics, counting each job by task, kind, placement and outcome', async () => {
    const app = await build({ MODE: 'hybrid', PROCESSES: '1', THREADS: '1' })
    for (const payload of [{ task: 'fib', input: { n: 5 } }, { task: 'fib', input: { n: 6 } }, { task: 'sleep', input: { ms: 1 } }, { task: 'x/../y', input: {} }, { task: 'fib', input: { n: 'x' } }]) {
      await app.inject({ method: 'POST', url: '/jobs', payload })
    }
    const res = await app.inject({ url: '/metrics' })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = res.body
    expect(sum(text, 'jobs_total', { task: 'fib', kind: 'cpu', via: 'pool', outcome: 'ok' })).toBe(2)
    expect(sum(text, 'jobs_total', { task: 'sleep', kind: 'io', via: 'event-loop', outcome: 'ok' })).toBe(1)
    expect(sum(text, 'jobs_total', { task: '(unknown)', outcome: 'UNKNOWN_TASK' })).toBe(1)
    expect(sum(text, 'jobs_total', { task: 'fib', outcome: 'BAD_INPUT' })).toBe(1)
    expect(text).not.toContain('x/../y')
    expect(sum(text, 'job_duration_seconds_count', { task: 'fib' })).toBe(2)
    expect(sum(text, 'job_queue_wait_seconds_count')).toBe(2)
    for (const name of ['event_loop_delay_seconds', 'event_loop_utilization', 'pool_threads', 'pool_max_threads', 'pool_queue_depth', 'pool_utilization', 'pool_wait_calibration',
      'websocket_connections', 'websocket_jobs_in_flight', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes']) {
      expect(text, name).toMatch(new RegExp(`^${name}(\\{| )`, 'm'))
    }
    expect(sum(text, 'pool_max_threads', { pid: String(process.pid) })).toBe(1)
  })
})

describe('GET /metrics on a 2-process server', () => {
  let server: RunningServer | undefined
  afterEach(async () => { await server?.stop('SIGKILL') })

  it('counts exactly the N jobs sent, whichever worker answers', async () => {
    server = await startServer({ MODE: 'processes', PROCESSES: '2' })
    const n = 24
    const pids = new Set<number>()
    for (let i = 0; i < n; i++) {
      const res = await onNewConnection(server.url, 'POST', '/jobs', JSON.stringify({ task: 'fib', input: { n: 10 } }))
      pids.add((JSON.parse(res.text) as { ranOn: { pid: number } }).ranOn.pid)
    }
    expect(pids.size).toBe(2)
    for (let i = 0; i < 4; i++) {
      const { status, text } = await onNewConnection(server.url, 'GET', '/metrics')
      expect(status).toBe(200)
      expect(sum(text, 'jobs_total', { outcome: 'ok' })).toBe(n)
      expect(sum(text, 'job_duration_seconds_count')).toBe(n)
      // Per-process gauges keep one sample per worker.
      expect(text.match(/^event_loop_utilization\{pid="\d+"\}/gm)).toHaveLength(2)
    }
  })

  it('survives workers killed while it gathers their metrics', async () => {
    // The primary asks every worker for its metrics; one killed meanwhile made the reply an
    // unheard 'error' event (ERR_IPC_CHANNEL_CLOSED) that ended the primary, and the server.
    server = await startServer({ MODE: 'hybrid' })
    const primary = server.proc.pid as number
    let scraping = true
    const scrapers = Array.from({ length: 8 }, async () => {
      // eslint-disable-next-line no-unmodified-loop-condition -- cleared below
      while (scraping) await onNewConnection(server!.url, 'GET', '/metrics').catch(() => undefined)
    })
    try {
      for (let i = 0; i < 8 && server.proc.exitCode === null; i++) {
        await new Promise((resolve) => setTimeout(resolve, 1200))
        // A worker: a child of the primary that runs the server (the delay service is another child).
        const [, ...children] = await processTree(primary)
        const cmdlines = await Promise.all(children.map(async (pid) => await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')))
        const worker = children.find((_, j) => cmdlines[j]?.includes('server.js'))
        if (worker !== undefined) process.kill(worker, 'SIGKILL')
      }
      // The job below is to find the cluster whole again, not a connection handed to the worker
      // killed a moment before (a connection the primary hands to a dying worker is lost with it).
      await new Promise((resolve) => setTimeout(resolve, 1200))
    } finally {
      scraping = false
      await Promise.all(scrapers)
    }
    expect(server.proc.exitCode, server.stderr()).toBeNull()
    const job = await onNewConnection(server.url, 'POST', '/jobs', JSON.stringify({ task: 'fib', input: { n: 10 } }))
    expect(job.status).toBe(200)
    expect(server.logs.filter((l) => l.msg === 'worker died while serving; replacing it').length).toBeGreaterThanOrEqual(6)
  }, 60_000)
})
