/**
 * What this server costs against what a user could write in twenty lines, each pair measured in
 * the same run, in alternating windows (reference, ours, reference, ours, ...) so that the shared
 * machine's drift falls on both, and by two clients: the project's load client and autocannon. A
 * rate counts answered jobs only (2xx): a refusal is not throughput. Every server runs with its
 * defaults; only the layout (MODE, PROCESSES) is set where the figure needs it.
 */
import { once } from 'node:events'
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'
import autocannon from 'autocannon'
import { projectRoot } from '../../src/paths.js'
import { cpuTogether, type CpuUsed, meterCpu, NO_CPU, processTreeRss } from '../lib/proc.js'
import { startServer, type ServerProcess } from '../../test/support/server-process.js'
import { runLoad } from '../load/run.js'
import { loadDefaults, type LoadOptions, TRIVIAL_JOB } from '../load/options.js'
import { directRate, rawPiscina } from '../matrix/references.js'
import { HEALTH_SAME_ANSWER } from './figures.js'
import { spread, type Spread } from '../matrix/stats.js'

const servers = `${projectRoot}/dist/bench/matrix/servers`
export const CLIENTS = ['load client', 'autocannon'] as const
export type Client = (typeof CLIENTS)[number]

export interface Plan {
  rounds: number
  windowS: number
  warmupS: number
  /** Seconds of trivial jobs each server answers when it starts, before its first window (JIT_WARMUP); 0: none. */
  jitWarmupS?: number
}

/**
 * The full run's plan: many short rounds rather than a few long ones. On a shared 2-core machine
 * a rate drifts by 10-30% from one minute to the next; two windows back to back see much the same
 * machine, and the median of six such ratios is not moved by one window that caught a neighbour's
 * burst.
 */
export const OVERHEAD_PLAN: Plan = { rounds: 6, windowS: 2, warmupS: 2, jitWarmupS: 3 }

/**
 * What every server answers first, for `Plan.jitWarmupS` seconds: trivial jobs from 50 connections,
 * some 20,000 in 3 s. V8 compiles a function with its optimising tier only after it has run many
 * times, so a fresh server runs its request path in the interpreter and in baseline code for its
 * first few thousand requests: at 150 `fib` 30 jobs a second (8 connections, `hybrid` in one
 * process), its event loop spent 1.44-1.56 ms of CPU per job in its first 2 s and 0.43-0.53 ms
 * after about 16 s, the naive server 1.03 and 0.41-0.54 (docs/performance.md, "A fresh server's
 * first thousands of jobs"). A pair's own warm-up (`warmupS` of its load) gives a CPU-bound pair a
 * few hundred jobs; without this it compared servers still compiling, the one with more code to
 * compile the further from its steady state. Every server here gets the same burst, the references
 * too; a `fib` n=1 job takes the path a CPU job takes in each (the pool in `hybrid` and in the
 * naive server, inline in `event-loop` and in plain Fastify).
 */
export const JIT_WARMUP: Drive = { connections: 50, path: '/jobs', body: TRIVIAL_JOB }

/** What one window drives: posts of `body` (or GETs of `path`), with optional background traffic beside it. */
export interface Drive {
  connections: number
  path: string
  body?: object
  /** Other traffic at the same time (its answers are not counted). */
  beside?: { connections: number, body: object }
}

const mix = (body: object): LoadOptions['mix'] => [{ task: (body as { task: string }).task, input: (body as { input: Record<string, unknown> }).input, weight: 1 }]

function loadOptions (url: string, connections: number, durationS: number, over: Partial<LoadOptions>): LoadOptions {
  return loadDefaults(url, { connections, duration: durationS, mix: [], timeoutMs: 30_000, ...over })
}

/** One window's answered jobs per second, and the jobs the server refused (503 OVERLOADED) per second. */
interface Rates {
  perS: number
  refusedPerS: number
}

/** One window of `drive` by one client: what the server answered and what it refused. */
async function window (client: Client, url: string, drive: Drive, seconds: number): Promise<Rates> {
  const beside = drive.beside
  if (client === 'load client') {
    const what = drive.body === undefined
      ? { path: drive.path, mix: [{ task: drive.path, input: {}, weight: 1 }] }
      : { mix: mix(drive.body) }
    const main = runLoad(loadOptions(url, drive.connections, seconds, what))
    const other = beside === undefined
      ? undefined
      : runLoad(loadOptions(url, beside.connections, seconds, { mix: mix(beside.body) }))
    const [report] = await Promise.all([main, other])
    return { perS: report.jobsPerS, refusedPerS: (report.errors.OVERLOADED ?? 0) / seconds }
  }
  const cannon = (
    connections: number, body: object | undefined, path: string
  ): Promise<autocannon.Result> => autocannon({
    url: `${url}${path}`,
    connections,
    duration: seconds,
    ...(body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  })
  const [result] = await Promise.all([cannon(drive.connections, drive.body, drive.path), beside === undefined ? undefined : cannon(beside.connections, beside.body, '/jobs')])
  return { perS: result['2xx'] / seconds, refusedPerS: (result.statusCodeStats?.['503']?.count ?? 0) / seconds }
}

/** How a plan warms each server up, in words for a report. */
export function warmUpText (plan: Plan): string {
  const jit = plan.jitWarmupS ?? 0
  const own = `${plan.warmupS} s of its pair's own load`
  return jit > 0 ? `${jit} s of trivial jobs from ${JIT_WARMUP.connections} connections as it starts (V8's warm-up: JIT_WARMUP in bench/overhead/measure.ts), then ${own}` : own
}

/** A fresh server's warm-up: the JIT's (JIT_WARMUP), then `warmupS` of the pair's own load. */
export async function warmUp (url: string, drive: Drive, plan: Plan): Promise<void> {
  const jit = plan.jitWarmupS ?? 0
  if (jit > 0) await window('load client', url, JIT_WARMUP, jit)
  await window('load client', url, drive, plan.warmupS)
}

export interface Pair {
  name: string
  client: Client
  ours: Spread
  reference: Spread
  /**
   * Each round's two windows, reference then ours, back to back: a figure is read round by round,
   * so that the machine's drift between rounds (other tenants, CPU frequency) falls on both sides
   * of each ratio. Absent from runs made before it was kept.
   */
  rounds?: { ours: number[], reference: number[] }
  /**
   * A third rate taken in each round, just before its two windows, where a figure composes the
   * reference with it (the pool job: raw Piscina's round trips per second). Absent from other pairs
   * and from runs made before it was taken per round (those measured it once, before the pairs).
   */
  alongside?: number[]
  /**
   * Each round's jobs refused per second (503 OVERLOADED), by each server: a pair whose server
   * sheds reads only as a lower rate otherwise. Absent from runs made before it was kept.
   */
  refused?: { ours: number[], reference: number[] }
}

/**
 * `drive` against two servers, alternating windows, for each client: each server warmed up first,
 * both alive throughout.
 */
export async function pair (
  name: string,
  start: { ours: () => Promise<ServerProcess>, reference: () => Promise<ServerProcess> },
  drive: Drive,
  plan: Plan,
  clients: readonly Client[] = CLIENTS,
  /** A third rate to take in each round before the pair's windows (Pair.alongside). */
  alongside?: () => Promise<number>
): Promise<Pair[]> {
  const reference = await start.reference()
  const ours = await start.ours()
  try {
    for (const s of [reference, ours]) await warmUp(s.url, drive, plan)
    const out: Pair[] = []
    for (const client of clients) {
      const values = { ours: [] as number[], reference: [] as number[] }
      const refused = { ours: [] as number[], reference: [] as number[] }
      const besides: number[] = []
      for (let r = 0; r < plan.rounds; r++) {
        if (alongside !== undefined) besides.push(await alongside())
        for (const [side, url] of [['reference', reference.url], ['ours', ours.url]] as const) {
          const rates = await window(client, url, drive, plan.windowS)
          values[side].push(rates.perS)
          refused[side].push(rates.refusedPerS)
        }
      }
      const measured: Pair = {
        name,
        client,
        ours: spread(values.ours),
        reference: spread(values.reference),
        rounds: values,
        refused
      }
      out.push(alongside === undefined ? measured : { ...measured, alongside: besides })
    }
    return out
  } finally {
    await Promise.all([ours.stop(), reference.stop()])
  }
}

export interface CpuCeiling {
  /** fib 30 in a loop on this process's main thread, one window before each of ours: calls/s. */
  directPerS: number
  /** fib 30 in a loop on `cores` bare worker threads at once, in the same alternation: calls/s, all threads. */
  parallelPerS: number
  cores: number
  /** hybrid fib 30, 8 connections, by the load client, answered jobs/s. */
  oursPerS: number
  /** CPU seconds per second used in our windows by the load client (this process) and by the server tree. */
  clientCpu: number
  serverCpu: number
  /**
   * Measured since runs of 2026-12-04 (absent from earlier reports): of serverCpu, what the
   * server's event loops (each process's main thread) used, the rest being pool threads and
   * helpers; and the naive cluster + Fastify + Piscina server, the same drive in the same
   * alternation, with its tree's CPU and its loops' share.
   */
  serverLoopsCpu?: number
  naivePerS?: number
  naiveCpu?: number
  naiveLoopsCpu?: number
}

export interface Memory {
  mode: string
  jobs: number
  /** RSS growth of the server tree per job in flight (answered), KiB, on the second round (the first warms up). */
  perJobKiB: number
  firstRoundPerJobKiB: number
  /** Wall time of the second round, seconds: every job answered. */
  seconds: number
  ok: number
}

export interface Overhead {
  at: string
  node: string
  cores: number
  plan: Plan
  pairs: Pair[]
  /** Raw Piscina's round trips per second: the mean of the pool pair's rounds (Pair.alongside). */
  rawPiscinaPerS: number
  cpuCeiling: CpuCeiling
  memory: Memory[]
}

/**
 * fib 30 in a loop on `threads` bare worker threads at once for `ms`: what the machine's cores give
 * together, calls/s.
 */
async function parallelFib (threads: number, ms: number): Promise<number> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const fib = (n) => n < 2 ? n : fib(n - 1) + fib(n - 2)
    const end = Date.now() + workerData
    let calls = 0
    while (Date.now() < end) { fib(30); calls++ }
    parentPort.postMessage(calls)`
  const start = performance.now()
  const counts = await Promise.all(Array.from({ length: threads }, async () => {
    const worker = new Worker(code, { eval: true, workerData: ms })
    const [calls] = await once(worker, 'message') as [number]
    await worker.terminate()
    return calls
  }))
  return counts.reduce((a, b) => a + b, 0) / ((performance.now() - start) / 1000)
}

/** Answered jobs/s over one window of `drive` against `server`, with the CPU its tree and the client used meanwhile. */
async function meteredWindow (
  server: ServerProcess, drive: Drive, seconds: number
): Promise<CpuUsed & { perS: number }> {
  const load = async (): Promise<Rates> => await window('load client', server.url, drive, seconds)
  const { result, used } = await meterCpu(server.proc.pid as number, load)
  return { perS: result.perS, ...used }
}

/**
 * `hybrid` fib 30 against what the cores give without a server: one window of the direct
 * single-thread rate, one of `cores` bare threads and one of the naive cluster + Fastify + Piscina
 * server before each window of ours, so that the shared machine's drift falls on all four; the
 * CPU of the load client is counted in our windows, and each server tree's, split into its event
 * loops and the rest, in its own.
 */
async function cpuCeiling (plan: Plan): Promise<CpuCeiling> {
  const cores = availableParallelism()
  const server = await startServer({})
  const naive = await startServer({}, 20_000, `${servers}/naive.js`)
  try {
    const drive = { connections: 8, path: '/jobs', body: { task: 'fib', input: { n: 30 } } }
    for (const s of [naive, server]) await warmUp(s.url, drive, plan)
    const direct: number[] = []
    const parallel: number[] = []
    const ours: number[] = []
    const naives: number[] = []
    const used = { ours: NO_CPU, naive: NO_CPU }
    for (let r = 0; r < plan.rounds; r++) {
      direct.push(directRate(plan.windowS * 1000, 30))
      parallel.push(await parallelFib(cores, plan.windowS * 1000))
      const theirs = await meteredWindow(naive, drive, plan.windowS)
      naives.push(theirs.perS)
      used.naive = cpuTogether(used.naive, theirs)
      const mine = await meteredWindow(server, drive, plan.windowS)
      ours.push(mine.perS)
      used.ours = cpuTogether(used.ours, mine)
    }
    return {
      directPerS: spread(direct).mean,
      parallelPerS: spread(parallel).mean,
      cores,
      oursPerS: spread(ours).mean,
      naivePerS: spread(naives).mean,
      clientCpu: used.ours.client / used.ours.seconds,
      serverCpu: used.ours.all / used.ours.seconds,
      serverLoopsCpu: used.ours.loops / used.ours.seconds,
      naiveCpu: used.naive.all / used.naive.seconds,
      naiveLoopsCpu: used.naive.loops / used.naive.seconds
    }
  } finally {
    await Promise.all([server.stop(), naive.stop()])
  }
}

/** RSS per WebSocket `sleep` job in flight: `jobs` at once over 10 connections, twice; the second round counts. */
export async function memory (mode: string, jobs: number): Promise<Memory> {
  const server = await startServer({ MODE: mode })
  try {
    const pid = server.proc.pid as number
    const round = async (): Promise<{ perJobKiB: number, seconds: number, ok: number }> => {
      const before = (await processTreeRss(pid)).bytes
      const report = await runLoad(loadOptions(server.url, 10, 0, { transport: 'ws', inFlight: jobs / 10, count: jobs, pid, mix: [{ task: 'sleep', input: { ms: 1000 }, weight: 1 }] }))
      // Per job answered: a job refused at once was never in flight.
      return {
        perJobKiB: ((report.rss?.peakBytes ?? before) - before) / Math.max(1, report.ok) / 1024,
        seconds: report.seconds,
        ok: report.ok
      }
    }
    const first = await round()
    const second = await round()
    return {
      mode,
      jobs,
      perJobKiB: second.perJobKiB,
      firstRoundPerJobKiB: first.perJobKiB,
      seconds: second.seconds,
      ok: second.ok
    }
  } finally {
    await server.stop()
  }
}

/** Every figure, in order; `progress` names each step. */
export async function measureOverhead (plan: Plan, progress: (step: string) => void): Promise<Overhead> {
  const cores = availableParallelism()
  const plain = (): Promise<ServerProcess> => startServer({}, 20_000, `${servers}/plain-fastify.js`)
  const naive = (): Promise<ServerProcess> => startServer({}, 20_000, `${servers}/naive.js`)
  const ours = (env: Record<string, string>) => async (): Promise<ServerProcess> => await startServer(env)
  const trivial = TRIVIAL_JOB
  const pairs: Pair[] = []

  progress('GET /health (against plain Fastify, and against plain Fastify giving the same answer) and a trivial inline job: this server (event-loop) against plain Fastify')
  pairs.push(...await pair('GET /health', { ours: ours({ MODE: 'event-loop' }), reference: plain }, { connections: 50, path: '/health' }, plan))
  // The control: plain Fastify giving this server's answer, ten times as long as `{ status: 'ok' }`.
  const plainSameAnswer = (): Promise<ServerProcess> => startServer({ HEALTH_ANSWER: 'same' }, 20_000, `${servers}/plain-fastify.js`)
  pairs.push(...await pair(HEALTH_SAME_ANSWER, { ours: ours({ MODE: 'event-loop' }), reference: plainSameAnswer }, { connections: 50, path: '/health' }, plan))
  pairs.push(...await pair('trivial inline job', { ours: ours({ MODE: 'event-loop' }), reference: plain }, { connections: 50, path: '/jobs', body: trivial }, plan))

  progress('a trivial pool job (hybrid, one process) against the inline job and raw Piscina')
  // Raw Piscina in each round, beside the round's two windows. Measured once, before the pairs, a
  // reading on a minute 30% faster than the pairs' raises the composition by about 9% at the
  // rates measured here (inline 15,000/s, raw Piscina 25,000/s), and lowers the ratio as much.
  const poolPairs = await pair(
    'trivial job, pool against inline', { ours: ours({ MODE: 'hybrid', PROCESSES: '1' }), reference: ours({ MODE: 'event-loop' }) },
    { connections: 50, path: '/jobs', body: trivial }, plan, CLIENTS, async () => await rawPiscina(plan.windowS * 1000, cores)
  )
  pairs.push(...poolPairs)
  const rawPiscinaPerS = spread(poolPairs.flatMap((p) => p.alongside ?? [])).mean

  for (const n of [25, 30]) {
    progress(`hybrid against the naive cluster + Fastify + Piscina server: fib ${n}, alone and with sleep 20 ms beside it`)
    const fib = { task: 'fib', input: { n } }
    pairs.push(...await pair(`fib ${n}, 8 connections`, { ours: ours({}), reference: naive }, { connections: 8, path: '/jobs', body: fib }, plan))
    pairs.push(...await pair(`fib ${n}, 8 connections, with 20 connections of sleep 20 ms beside`, { ours: ours({}), reference: naive },
      { connections: 8, path: '/jobs', body: fib, beside: { connections: 20, body: { task: 'sleep', input: { ms: 20 } } } }, plan))
  }

  progress('hybrid fib 30 against cores x the direct single-thread rate')
  const ceiling = await cpuCeiling(plan)

  progress('memory per WebSocket sleep job in flight')
  const mem = [await memory('event-loop', 10_000), await memory('hybrid', 10_000)]
  return {
    at: new Date().toISOString(),
    node: process.version,
    cores,
    plan,
    pairs,
    rawPiscinaPerS,
    cpuCeiling: ceiling,
    memory: mem
  }
}
