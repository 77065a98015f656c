import { request } from 'undici'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { openJobSocket, sendFrame } from '../support/bad-inputs.js'
import { runLoad, type LoadReport } from '../../bench/load/run.js'
import { loadDefaults, type LoadOptions } from '../../bench/load/options.js'
import { startServer, type RunningServer } from '../helpers.js'
import { sum } from '../support/prometheus.js'

let server: RunningServer | undefined
afterEach(async () => { await server?.stop('SIGKILL') })

/** Closed-loop clients, unless a test says otherwise. */
const CLIENTS = 50

const load = (url: string, over: Partial<LoadOptions>): LoadOptions => loadDefaults(url, {
  connections: CLIENTS,
  duration: 2,
  mix: [{ task: 'fib', input: { n: 1 }, weight: 1 }],
  timeoutMs: 10_000,
  ...over
})

/** Samples POST /jobs every 50 ms while `during` runs: what a client hitting the server then sees. */
async function probe (url: string, body: string, during: Promise<unknown>): Promise<Array<{
  status: number,
  code?: string,
  retryAfter?: string
}>> {
  const seen: Array<{ status: number, code?: string, retryAfter?: string }> = []
  let done = false
  void during.finally(() => { done = true })
  // eslint-disable-next-line no-unmodified-loop-condition -- set when the load ends
  while (!done) {
    const res = await request(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, headersTimeout: 10_000 })
    const answer = await res.body.json() as { code?: string }
    seen.push({ status: res.statusCode, code: answer.code, retryAfter: res.headers['retry-after'] as string | undefined })
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return seen
}

/** Stalls of the server's process past the shedding interval that one measured run may meet. */
const STALLS_ALLOWED = 4

/**
 * Nothing is shed while answers stay under the target. The load client shares the server's two
 * cores: when it (or a garbage collection, or the machine's other tenants) holds the loop back
 * past the target for a whole interval, the queue really does stand, and a few refusals are then
 * the rule working, not a fault. They must stay a small share: a fresh-clone CI run saw 1.8% with
 * p99 over the target; the utilisation rule this replaced refused about 80% of such a load.
 *
 * While p99 stays under the target, only stalls may be refused: a stall of the process longer
 * than the interval refuses the turn that follows it, whose requests did wait that long, one per
 * client (by hand, a SIGSTOP of 150 ms under 50 clients: 48-51 refused each time). A rule that
 * kept refusing after the stall (it did, until each request was bounded by its connection's
 * previous one: 1.7-9.3% refused with p99 at 8-10 ms) fails here.
 */
function expectNotShedWhileOnTime (report: LoadReport, targetMs: number): void {
  expect(Object.keys(report.errors).filter((code) => code !== 'OVERLOADED')).toEqual([])
  const shed = report.errors.OVERLOADED ?? 0
  if (shed === 0) return
  if (report.latencyMs.p99 <= targetMs) expect(shed).toBeLessThanOrEqual(STALLS_ALLOWED * CLIENTS)
  expect(shed / (report.ok + shed)).toBeLessThan(0.05)
}

describe('admission by queueing delay, on real servers with the default targets', () => {
  it('does not shed a loop that is saturated but on time: 50 closed-loop clients of trivial jobs', async () => {
    server = await startServer({ MODE: 'event-loop' })
    await runLoad(load(server.url, { duration: 1 })) // warm-up
    const report = await runLoad(load(server.url, {}))
    expect(report.ok).toBeGreaterThan(1000)
    expectNotShedWhileOnTime(report, 10)
  }, 20_000)

  it('admits a saturated loop again once a stall of its process is over: 5 closed-loop clients', async () => {
    server = await startServer({ MODE: 'event-loop' })
    // 1 ms of CPU each: a turn reading all 5 clients lasts about 6 ms, and the next goes straight
    // on, so a request read late in a turn arrived at most one turn before, but as far as the turns
    // alone can tell, two. A job's run is several times what its request costs the loop besides
    // (0.1-0.2 ms on a warming server here), so refusing it pays (RefusalPayoff): the rule decides.
    const saturating = { connections: 5, mix: [{ task: 'spin', input: { ms: 1 }, weight: 1 }] }
    const warmUp = await runLoad(load(server.url, { ...saturating, duration: 1 }))
    // The turn after a stall reads requests that waited 150 ms, past the 100 ms interval: refused,
    // where refusing them pays. Whether it pays is measured (RefusalPayoff), and it reads lower on
    // cores that other processes hold too: by hand, with a busy loop on one core, the ratio read
    // 1.4-2.6 after a stall against 3.5-5.9 on a quiet machine, and 2 stalls in 10 refused nothing
    // (a fresh-clone CI run of 2026-12-06 met one). So the process is stalled up to three times,
    // until a stall is refused: what is tested is that the loop admits again after it.
    const stalls: LoadReport[] = []
    const refusedAny = (): boolean => stalls.some((report) => (report.errors.OVERLOADED ?? 0) > 0)
    while (stalls.length < 3 && !refusedAny()) {
      const stalled = runLoad(load(server.url, { ...saturating, duration: 1 }))
      await sleep(300)
      server.proc.kill('SIGSTOP')
      await sleep(150)
      server.proc.kill('SIGCONT')
      stalls.push(await stalled)
    }
    expect(refusedAny()).toBe(true)
    const after = await runLoad(load(server.url, saturating))
    // A loop that admits again serves hundreds of these in 2 s (about 1,400 on a quiet machine,
    // 620-850 with two busy processes on its cores); one still refusing serves next to none.
    expect(after.ok).toBeGreaterThan(200)
    expectNotShedWhileOnTime(after, 10)
    // Every refusal is in /metrics, once: at admission before the body was read, or as a job
    // refused after it. Which of the two a stall's refusals land in depends on how far behind the
    // loop reads at each check (admission bounds a request's wait by its connection's previous
    // read; an inline job is checked again as it is about to run, behind the jobs read before it
    // in the turn): a fresh-clone CI run of 2026-12-06 refused them all as jobs. So the test holds
    // the sum of both to what the client was told.
    const text = await (await request(`${server.url}/metrics`)).body.text()
    const refusedToClient = [warmUp, ...stalls, after].reduce((n, report) => n + (report.errors.OVERLOADED ?? 0), 0)
    expect(refusedToClient).toBeGreaterThan(0)
    expect(sum(text, 'requests_refused_total', { code: 'OVERLOADED' }) + sum(text, 'jobs_total', { outcome: 'OVERLOADED' })).toBe(refusedToClient)
  }, 30_000)

  it('does not shed a pool that keeps up either: 50 closed-loop clients of trivial pool jobs', async () => {
    server = await startServer({ MODE: 'hybrid', PROCESSES: '1' })
    await runLoad(load(server.url, { duration: 1 }))
    const report = await runLoad(load(server.url, {}))
    expect(report.ok).toBeGreaterThan(500)
    expectNotShedWhileOnTime(report, 50)
  }, 20_000)

  // spin 5 ms: at most 200 jobs/s on the one loop or the one thread; 600/s offered is 3x that.
  const heavy = { task: 'spin', input: { ms: 5 }, weight: 1 }
  for (const [model, env] of [['event-loop (inline)', { MODE: 'event-loop' }], ['hybrid (pool)', { MODE: 'hybrid', PROCESSES: '1', THREADS: '1' }]] as const) {
    it(`sheds an open loop past its capacity with 503 OVERLOADED and Retry-After, keeps /health, serves what it admits: ${model}`, async () => {
      server = await startServer(env)
      const url = server.url
      const overload = runLoad(load(url, { rate: 600, connections: 300, duration: 2.5, mix: [heavy] }))
      const probes = probe(url, JSON.stringify({ task: 'spin', input: { ms: 5 } }), overload)
      const report = await overload
      const seen = await probes
      expect(report.errors.OVERLOADED ?? 0).toBeGreaterThan(0)
      expect(Object.keys(report.errors).filter((code) => code !== 'OVERLOADED')).toEqual([])
      expect(report.ok).toBeGreaterThan(100) // the admitted jobs are served
      const shed = seen.filter((s) => s.status === 503)
      expect(shed.length).toBeGreaterThan(0)
      for (const s of shed) expect(s).toEqual({ status: 503, code: 'OVERLOADED', retryAfter: '1' })
      expect(seen.every((s) => s.status === 200 || s.status === 503)).toBe(true)
      expect((await request(`${url}/health`)).statusCode).toBe(200)
      // Once the load is gone, the queue empties and jobs are admitted again.
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect((await request(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ task: 'spin', input: { ms: 5 } }) })).statusCode).toBe(200)
    }, 20_000)
  }

  it('holds its refusals when clients send each refused job straight back: a closed loop past the pool\'s target', async () => {
    // One thread, spin 10 ms, 8 connections: 7 jobs wait, 70 ms, over the 50 ms target, so the
    // pool refuses, and the load client sends each refused job again at once. With the refusals
    // answered at once this test saw 5,502 refusals against 287 answers; held, a few hundred
    // against about as many answers (docs/performance.md, "Clients that come straight back").
    server = await startServer({ MODE: 'hybrid', PROCESSES: '1', THREADS: '1' })
    const report = await runLoad(load(server.url, { connections: 8, duration: 4, mix: [{ task: 'spin', input: { ms: 10 }, weight: 1 }] }))
    expect(Object.keys(report.errors).filter((code) => code !== 'OVERLOADED')).toEqual([])
    const shed = report.errors.OVERLOADED ?? 0
    expect(shed).toBeGreaterThan(0)
    expect(report.ok).toBeGreaterThan(100)
    // Held, 1.7-2.0 refusals per answer on a quiet machine, 3.0 once in a fresh-clone CI run (its
    // other test files take the cores, and the one thread answers fewer); answered at once, 19.
    expect(shed).toBeLessThan(6 * report.ok)
    expect(report.failedLatencyMs.max).toBeGreaterThanOrEqual(100) // some were held an interval
  }, 20_000)

  it('sheds WebSocket frames too while the loop is behind, and keeps the connections', async () => {
    server = await startServer({ MODE: 'event-loop' })
    const url = server.url
    const idle = await openJobSocket(url)
    const spin = [{ task: 'spin', input: { ms: 5 }, weight: 1 }]
    const [overHttp, overWs] = await Promise.all([
      runLoad(load(url, { rate: 600, connections: 300, duration: 2, mix: spin })),
      runLoad(load(url, { transport: 'ws', connections: 4, inFlight: 25, duration: 2, mix: spin }))
    ])
    expect(overHttp.errors.OVERLOADED ?? 0).toBeGreaterThan(0)
    expect(overWs.errors.OVERLOADED ?? 0).toBeGreaterThan(0)
    expect(overWs.ok).toBeGreaterThan(0)
    expect(Object.keys(overWs.errors).filter((code) => code !== 'OVERLOADED')).toEqual([])
    expect(idle.readyState).toBe(idle.OPEN)
    expect((await sendFrame(idle, Buffer.from(JSON.stringify({ id: 1, task: 'fib', input: { n: 5 } })), false)).code).toBe('OK')
    idle.terminate()
  }, 20_000)
})
