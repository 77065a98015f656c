import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseJob, parseOptions } from '../../bench/load/options.js'
import { runLoad } from '../../bench/load/run.js'
import { serverTotalMs } from '../../bench/load/transports.js'
import { buildApp } from '../../src/app.js'
import { parseConfig } from '../../src/config.js'
import { IN_PROCESS } from '../helpers.js'

describe('load client options', () => {
  it('parses job specs: task, input and weight', () => {
    expect(parseJob('fib')).toEqual({ task: 'fib', input: {}, weight: 1 })
    expect(parseJob('fib:{"n":30}@3')).toEqual({ task: 'fib', input: { n: 30 }, weight: 3 })
    expect(parseJob('sleep:{"ms":100}')).toEqual({ task: 'sleep', input: { ms: 100 }, weight: 1 })
    expect(() => parseJob('fib:[1]')).toThrow(/expected TASK/)
  })

  it('has defaults, and refuses bad values by name', () => {
    expect(parseOptions([])).toMatchObject({ url: 'http://127.0.0.1:3000', transport: 'http', encoding: 'json', connections: 10, inFlight: 1, duration: 10, count: undefined, rate: undefined })
    expect(() => parseOptions(['--connections', '0'])).toThrow(/--connections must be a positive integer/)
    expect(() => parseOptions(['--transport', 'grpc'])).toThrow(/--transport/)
    expect(() => parseOptions(['--nope'])).toThrow()
  })
})

describe('runLoad against a real server', () => {
  let app: FastifyInstance
  let url: string
  beforeAll(async () => {
    app = await buildApp(parseConfig({ ...IN_PROCESS, MODE: 'event-loop' }))
    url = await app.listen({ port: 0, host: '127.0.0.1' })
  })
  afterAll(() => app.close())

  it.each([['http', 'json'], ['http', 'msgpack'], ['ws', 'json'], ['ws', 'msgpack']] as const)('%s %s: sends exactly --count jobs and counts errors by code', async (transport, encoding) => {
    const options = parseOptions(['--url', url, '--transport', transport, '--encoding', encoding, '--connections', '3', '--in-flight', '4', '--count', '300', '--quiet',
      '--job', 'fib:{"n":10}@2', '--job', 'nope@1', '--job', 'fib:{"n":"x"}@1'])
    const report = await runLoad(options)
    expect(report.sent).toBe(300)
    expect(report.ok + report.failed).toBe(300)
    expect(report.ok).toBe(report.byTask.fib!.count)
    expect(Object.keys(report.errors).sort()).toEqual(['BAD_INPUT', 'UNKNOWN_TASK'])
    expect(report.errors.UNKNOWN_TASK).toBe(report.byTask.nope!.errors)
    expect(report.latencyMs.p50).toBeGreaterThan(0)
    expect(report.latencyMs.max).toBeGreaterThanOrEqual(report.latencyMs.p99)
  })

  it('runs open loop at a target rate for a duration, and stops by itself', async () => {
    const progress: number[] = []
    const report = await runLoad(parseOptions(['--url', url, '--transport', 'ws', '--rate', '200', '--duration', '1.5', '--in-flight', '20', '--connections', '2', '--job', 'sleep:{"ms":20}']), (p) => progress.push(p.sent))
    // 200 jobs/s for 1.5 s: 300 due; the last tick may leave a few unsent.
    expect(report.sent + report.skipped).toBeGreaterThan(280)
    expect(report.sent + report.skipped).toBeLessThanOrEqual(300)
    expect(report.failed).toBe(0)
    expect(progress.length).toBeGreaterThan(0)
  })

  it('splits an HTTP answer\'s latency: the server\'s own time from Server-Timing, and how late the open loop sent', async () => {
    const report = await runLoad(parseOptions(['--url', url, '--rate', '100', '--duration', '1', '--connections', '4', '--quiet',
      '--job', 'sleep:{"ms":30}@3', '--job', 'nope@1']))
    const { server, sendLate } = report.parts ?? {}
    // A sleep of 30 ms: the server's time for it is at least that, and the client's, from the job's
    // intended send time, at least the server's; an unknown task is refused within the server's own time.
    expect(server?.ok.count).toBe(report.ok)
    // Node's timers fire by a coarser clock than performance.now(): a 30 ms sleep has been timed at 29.98 ms.
    expect(server?.ok.p50).toBeGreaterThanOrEqual(29)
    expect(report.latencyMs.p50).toBeGreaterThanOrEqual(server?.ok.p50 as number)
    expect(server?.failed.count).toBe(report.errors.UNKNOWN_TASK)
    expect(report.failedLatencyMs.max).toBeGreaterThanOrEqual(server?.failed.max as number)
    expect(sendLate?.count).toBe(report.ok + report.failed)
    // A closed loop sends each job when it means to: no lateness to report.
    const closed = await runLoad(parseOptions(['--url', url, '--count', '20', '--connections', '2', '--quiet', '--job', 'fib:{"n":5}']))
    expect(closed.parts?.sendLate).toBeUndefined()
    expect(closed.parts?.server?.ok.count).toBe(20)
  })

  it('with openFirst, opens every HTTP connection before its clock starts; without it, with the first jobs', async () => {
    let connected = 0
    const count = (): void => { connected++ }
    app.server.on('connection', count)
    try {
      const atStart: number[] = []
      for (const openFirst of [true, false]) {
        connected = 0
        const options = parseOptions(['--url', url, '--count', '10', '--connections', '5', '--quiet', '--job', 'fib:{"n":1}', ...(openFirst ? ['--open-first'] : [])])
        expect(options.openFirst).toBe(openFirst ? true : undefined)
        const report = await runLoad(options, undefined, () => atStart.push(connected))
        expect(report.ok).toBe(10)
        expect(report.openMs).toBeGreaterThanOrEqual(0)
        expect(connected).toBe(5)
      }
      expect(atStart).toEqual([5, 0])
    } finally {
      app.server.off('connection', count)
    }
  })

  it('reads the total of a Server-Timing header', () => {
    expect(serverTotalMs('queue;dur=0.1, run;dur=2, total;dur=2.45')).toBe(2.45)
    expect(serverTotalMs('total;dur=0.3')).toBe(0.3)
    expect(serverTotalMs(['queue;dur=1', 'total;dur=4'])).toBe(4)
    expect(serverTotalMs('subtotal;dur=9')).toBeUndefined()
    expect(serverTotalMs(undefined)).toBeUndefined()
  })

  it('stops at the job timeout when the server never answers', async () => {
    const report = await runLoad(parseOptions(['--url', url, '--transport', 'ws', '--count', '2', '--timeout-ms', '300', '--connections', '1', '--in-flight', '2', '--job', 'sleep:{"ms":5000}', '--quiet']))
    expect(report.timedOut).toBe(2)
    expect(report.failed).toBe(0)
    expect(report.errors).toEqual({})
  })
})
