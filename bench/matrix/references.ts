import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { Piscina } from 'piscina'
import { projectRoot } from '../../src/paths.js'
import { processTreeRss } from '../lib/proc.js'
import { NO_SHEDDING, startServer, type ServerProcess } from '../../test/support/server-process.js'
import { runLoad } from '../load/run.js'
import { autoRoundTripMs, jobsByPlacement, loadOptions, poolThreads, scrape, type Measurement } from './cell.js'
import type { Load, Plan } from './plan.js'
import { measureOverhead, OVERHEAD_PLAN, type Overhead } from '../overhead/measure.js'
import { findPython, runArticleTester, type PythonSeconds } from '../article/tester.js'
import { orderOf, roundOrder, type RoundOrder } from './order.js'
import { measureShift, type ShiftResult } from './shift.js'
import { spread } from './stats.js'
import { measureIterationsPerMs } from '../../cpu-tasks/spin.js'

const serversDir = `${projectRoot}/dist/bench/matrix/servers`

/** Where `auto` ran one cost's jobs in the spin sweep: the share on the pool, and its round trip estimate after, ms. */
export interface AutoPlacement { poolShare: number, roundTripMs: number | undefined }

export interface References {
  /**
   * fib(30) called directly on one thread, per second: cores x this is the CPU ceiling. The mean of
   * `directFibPerSEach`, read right before and right after the CPU row it bounds; in runs without
   * them, read once among the references, up to half an hour after that row.
   */
  directFibPerS: number
  directFibPerSEach?: number[]
  /**
   * What this server costs against plain Fastify, raw Piscina and the naive server, by two clients
   * (bench/overhead); full run only.
   */
  overhead?: Overhead
  /** The naive server on the mixed row's CPU-saturated cell, measured in that row beside the models. */
  naiveMixed: Measurement[]
  /** Full run only, like `offload`: each takes longer than the quick run can spare. */
  memory?: { perIoJobKiB: number, ioJobs: number, perThreadMiB: number, threadsAdded: number }
  performanceTester: PerformanceTester
  /**
   * `autoPerS` (CPU_JOBS=auto, the same layout as the pool's) is absent from runs made before it;
   * `rounds` and `windowS` from runs that measured each server's whole sweep in turn, one window per cost.
   */
  offload?: {
    costsMs: number[],
    inlinePerS: number[],
    poolPerS: number[],
    autoPerS?: number[],
    thresholdMs: number | undefined,
    rounds?: number,
    windowS?: number,
    /**
     * Each round's jobs/s, [cost][round], inline, pool and auto (absent from runs before it): the
     * auto line's ratio is then the median of the rounds' ratios (report.ts, autoSweep).
     */
    perRound?: { inline: number[][], pool: number[][], auto: number[][] },
    /** SPIN_ITERATIONS_PER_MS given to the three servers (absent from runs where each thread measured its own). */
    spinIterationsPerMs?: number
    /** How the rounds were ordered (roundOrder); absent from runs that rotated them. */
    order?: RoundOrder
    /**
     * Where `auto` ran each cost's jobs in its rounds (its warm-up left out), the share on the
     * pool, and its pool round trip estimate after them, in ms (both absent from runs before them).
     */
    autoPlaced?: AutoPlacement[]
    /** Seconds each server ran each cost in a pass before the first cost's rounds, not counted (absent before it). */
    warmPassS?: number
  }
  /** Full run only: a cost that jumps and comes back, inline, on the pool and under CPU_JOBS=auto. */
  shift?: ShiftResult
}

/**
 * The article's PerformanceTester: N calls of a 1 s delay at once, the wall time until all are
 * answered, at each N. Through this server (jobs over one WebSocket, on the event loop and on a pool
 * of 50 threads) and, where Python with aiohttp and requests is installed, by the article's own
 * Python code against the same delay service.
 */
export interface PerformanceTester {
  delayMs: number
  points: Array<{
    calls: number
    eventLoopS: number
    threadPoolS: number
    python?: PythonSeconds
  }>
  /** The Python that ran the article's code, or why it did not run. */
  python: { version: string } | { skipped: string }
}

/** The naive cluster + Fastify + Piscina server (servers/naive.ts), against the bench's delay service. */
export async function startNaive (upstreamUrl: string): Promise<ServerProcess> {
  return await startServer({ UPSTREAM_URL: upstreamUrl }, 20_000, `${serversDir}/naive.js`)
}

function fib (n: number): number {
  return n < 2 ? n : fib(n - 1) + fib(n - 2)
}

export function directRate (durationMs: number, n = 30): number {
  let calls = 0
  const start = performance.now()
  while (performance.now() - start < durationMs) {
    fib(n)
    calls++
  }
  return calls / ((performance.now() - start) / 1000)
}

export async function rawPiscina (durationMs: number, threads: number): Promise<number> {
  const pool = new Piscina<number, number>({ filename: `${serversDir}/noop-worker.js`, minThreads: threads, maxThreads: threads })
  try {
    await Promise.all(Array.from({ length: threads * 8 }, (_, i) => pool.run(i)))
    let done = 0
    const start = performance.now()
    await Promise.all(Array.from({ length: threads * 8 }, async () => {
      while (performance.now() - start < durationMs) {
        await pool.run(done)
        done++
      }
    }))
    return done / ((performance.now() - start) / 1000)
  } finally {
    await pool.close()
  }
}

/** Memory per I/O job in flight on the event loop against memory per pool thread, each from RSS growth. */
async function memory (upstreamUrl: string, ioJobs: number, sleepMs: number): Promise<References['memory']> {
  const loop = await startServer({ ...NO_SHEDDING, MODE: 'event-loop', UPSTREAM_URL: upstreamUrl })
  let perIoJobKiB: number
  try {
    const connections = 10
    const report = await runLoad({ ...loadOptions(loop.url, { transport: 'ws', connections, inFlight: ioJobs / connections, mix: [{ task: 'sleep', input: { ms: sleepMs }, weight: 1 }] }, 0), count: ioJobs, pid: loop.proc.pid, cut: false })
    perIoJobKiB = ((report.rss?.peakBytes ?? 0) - (report.rss?.startBytes ?? 0)) / ioJobs / 1024
  } finally {
    await loop.stop()
  }
  const threads = await startServer({ ...NO_SHEDDING, MODE: 'threads', THREADS: '50', UPSTREAM_URL: upstreamUrl })
  try {
    const before = await poolThreads(threads.url)
    const idle = (await processTreeRss(threads.proc.pid as number)).bytes
    const report = await runLoad({ ...loadOptions(threads.url, { transport: 'ws', connections: 1, inFlight: 50, mix: [{ task: 'sleep', input: { ms: sleepMs }, weight: 1 }] }, 0), count: 50, pid: threads.proc.pid, cut: false })
    const added = await poolThreads(threads.url) - before
    return {
      perIoJobKiB,
      ioJobs,
      perThreadMiB: ((report.rss?.peakBytes ?? idle) - idle) / Math.max(1, added) / 2 ** 20,
      threadsAdded: added
    }
  } finally {
    await threads.stop()
  }
}

/** How long a call of the article's tester may take, on the server and in the client: a call never gives up. */
const PATIENT_MS = 600_000

/** The article's PerformanceTester at each count: through this server, then by the article's own Python code. */
async function performanceTester (
  upstreamUrl: string, counts: number[], withPython: boolean
): Promise<PerformanceTester> {
  const delayMs = 1000
  // Like the article's clients, this one neither sheds nor gives up: every call waits its turn.
  const patient = {
    ...NO_SHEDDING,
    JOB_TIMEOUT_MS: String(PATIENT_MS),
    MAX_QUEUE: String(Math.max(...counts)),
    UPSTREAM_URL: upstreamUrl
  }
  const walls = async (env: Record<string, string>): Promise<number[]> => {
    const server = await startServer({ ...patient, ...env })
    try {
      const out: number[] = []
      for (const calls of counts) {
        const mix = [{ task: 'http', input: { delayMs, bytes: 0 }, weight: 1 }]
        // Up to 10 WebSockets, as the sweep (one socket takes at most WS_MAX_IN_FLIGHT jobs at once).
        const connections = Math.min(10, calls)
        const load = { transport: 'ws' as const, connections, inFlight: Math.ceil(calls / connections), mix }
        // Nor does the client time out: `threads` with 50 threads takes calls / 50 s for 1 s calls,
        // and at 3,000 the last ones waited about the load client's default 60 s (a full run of
        // 2026-12-07 ended there, 31 minutes in).
        const options = { ...loadOptions(server.url, load, 0), count: calls, cut: false, timeoutMs: PATIENT_MS }
        const report = await runLoad(options)
        if (report.ok !== calls) {
          throw new Error(`performance tester: of ${calls} calls ${report.failed} failed (${JSON.stringify(report.errors)}), ${report.timedOut} timed out, ${report.abandoned} abandoned`)
        }
        out.push(report.seconds)
      }
      return out
    } finally {
      await server.stop()
    }
  }
  const eventLoop = await walls({ MODE: 'event-loop' })
  const threadPool = await walls({ MODE: 'threads', THREADS: '50' })
  // The quick run leaves Python to the full run: its three clients cost the quick run 5 s it has not got.
  const found = withPython ? await findPython() : { skipped: 'left to the full run' }
  const byPython = 'bin' in found ? await runArticleTester(found.bin, `${upstreamUrl}/delay/${delayMs}`, counts) : []
  const python = new Map(byPython.map((p) => [p.calls, p.seconds]))
  return {
    delayMs,
    points: counts.map((calls, i) => {
      const py = python.get(calls)
      const node = { calls, eventLoopS: eventLoop[i] as number, threadPoolS: threadPool[i] as number }
      return py === undefined ? node : { ...node, python: py }
    }),
    python: 'bin' in found ? { version: found.version } : found
  }
}

/**
 * The spin sweep's rounds and their windows (s): three servers x eight costs x 12 s, about 5
 * minutes. One window's ratio between two servers placing the same way ran 0.69-1.19 on this
 * machine; 12 rounds rather than 6 narrow the median of the rounds' ratios by about 1.4 times.
 * And the seconds of each cost in the pass before them, not counted (offload() says why).
 */
const SWEEP = { rounds: 12, windowS: 1, warmPassS: 1 }
/** Rounds of the shifting cost: auto is read against its own round's best placement, the median taken (shift.ts). */
const SHIFT_ROUNDS = 6

/**
 * jobs/s of `spin` at each cost, inline on one event loop against a pool of `cores` threads in one
 * process, and the same pool's layout with each job placed by its measured cost (`auto`). The three
 * servers are up at once and, at each cost, measured in alternation (`rounds` windows each, the
 * mean kept), so that the machine's drift falls on all three. The rounds' orders (roundOrder) put
 * each server first, and right after each other one, equally often, and each round's figures are
 * kept: a ratio between servers is taken round by round (the median of the
 * rounds'), so that one window that caught a burst on a shared host does not move it. Before the
 * first cost, each server runs every cost for `warmPassS`, not counted: a fresh server runs a
 * placement's path through code V8 has not compiled yet, and `auto` first takes its pool path at
 * the first cost it sends there (0.2 ms, in the middle of the sweep), where the pool server has
 * been taking it from the start.
 */
async function offload (
  upstreamUrl: string, { windowS, rounds, warmPassS }: typeof SWEEP, costsMs: number[], spinIterationsPerMs: number
): Promise<References['offload']> {
  const cores = availableParallelism()
  const envs: Array<Record<string, string>> = [{ MODE: 'event-loop' }, { MODE: 'hybrid', PROCESSES: '1' }, { MODE: 'auto', PROCESSES: '1' }]
  const shared = { ...NO_SHEDDING, UPSTREAM_URL: upstreamUrl, SPIN_ITERATIONS_PER_MS: String(spinIterationsPerMs) }
  // Each server's jobs/s, [cost][round].
  const sweeps: Array<{ server: ServerProcess, rounds: number[][] }> = []
  try {
    for (const env of envs) {
      const server = await startServer({ ...shared, ...env })
      sweeps.push({ server, rounds: [] })
    }
    // `auto` is the last of the three servers (envs above).
    const autoUrl = sweeps[sweeps.length - 1]?.server.url ?? ''
    const autoPlaced: AutoPlacement[] = []
    const loadAt = (ms: number): Load => ({ transport: 'http', connections: 2 * cores, inFlight: 1, mix: [{ task: 'spin', input: { ms }, weight: 1 }], cut: false })
    // `auto` is scraped before and after each cost's rounds. A fresh server's first /metrics
    // answer slows its jobs for about a second after it (warmJit says how much), so each server's
    // is made before the warm pass. auto's first round at the first cost is still often its lowest,
    // for a cause not found (docs/performance.md, run 48, has what was tried).
    for (const s of sweeps) await scrape(s.server.url)
    for (const ms of costsMs) {
      for (const s of sweeps) await runLoad(loadOptions(s.server.url, loadAt(ms), warmPassS))
    }
    for (const [c, ms] of costsMs.entries()) {
      const load = loadAt(ms)
      // Auto learns the new cost from its warm-up, as from any first jobs of a task.
      for (const s of sweeps) {
        s.rounds[c] = []
        await runLoad(loadOptions(s.server.url, load, 0.2))
      }
      const before = jobsByPlacement(await scrape(autoUrl), 'spin')
      for (let r = 0; r < rounds; r++) {
        for (const k of roundOrder(sweeps.length, r)) {
          const s = sweeps[k] as typeof sweeps[number]
          s.rounds[c]?.push((await runLoad(loadOptions(s.server.url, load, windowS))).jobsPerS)
        }
      }
      const metrics = await scrape(autoUrl)
      const after = jobsByPlacement(metrics, 'spin')
      const [inlineJobs, poolJobs] = [after.inline - before.inline, after.pool - before.pool]
      autoPlaced.push({ poolShare: poolJobs / (inlineJobs + poolJobs), roundTripMs: autoRoundTripMs(metrics) })
    }
    const [inline = [], pool = [], auto = []] = sweeps.map((s) => s.rounds)
    const means = (perCost: number[][]): number[] => perCost.map((r) => spread(r).mean)
    const [inlinePerS, poolPerS, autoPerS] = [means(inline), means(pool), means(auto)]
    const at = costsMs.findIndex((_, i) => (poolPerS[i] ?? 0) >= (inlinePerS[i] ?? Infinity))
    const thresholdMs = at < 0 ? undefined : costsMs[at]
    const perRound = { inline, pool, auto }
    return {
      costsMs,
      inlinePerS,
      poolPerS,
      autoPerS,
      thresholdMs,
      rounds,
      windowS,
      spinIterationsPerMs,
      perRound,
      autoPlaced,
      order: orderOf(sweeps.length),
      warmPassS
    }
  } finally {
    await Promise.all(sweeps.map((s) => s.server.stop()))
  }
}

/** What the rows measured for the references: the naive server's mixed load, the direct rate's readings. */
export interface FromRows { naiveMixed: Measurement[], directFibPerSEach: number[] }

/**
 * Everything measured beside the matrix, in the same run (some of it in the rows: `fromRows`).
 * `progress` reports each step.
 */
export async function measureReferences (
  plan: Plan, upstreamUrl: string, { naiveMixed, directFibPerSEach }: FromRows, progress: (step: string) => void
): Promise<References> {
  const directFibPerS = directFibPerSEach.reduce((a, b) => a + b, 0) / directFibPerSEach.length
  // The overhead figures take minutes (two clients, alternating windows): the quick run leaves
  // them to `npm run bench:overhead`.
  if (plan.name === 'full') progress('overhead against plain Fastify, raw Piscina and the naive server, two clients')
  const overhead = plan.name === 'full' ? await measureOverhead(OVERHEAD_PLAN, (step) => progress(`overhead: ${step}`)) : undefined
  progress('the article\'s PerformanceTester')
  const full = plan.name === 'full'
  const tester = await performanceTester(upstreamUrl, full ? [10, 100, 1000, 3000] : [100], full)
  if (full) progress('memory per I/O job and per thread')
  const mem = full ? await memory(upstreamUrl, 10_000, 2000) : undefined
  // One measure of `spin`'s work per ms for every server of the sweep and the shift: each thread
  // measuring its own, the servers compared would do different work for the same `ms`.
  const spinIterationsPerMs = full ? Math.round(measureIterationsPerMs()) : 0
  if (full) progress('CPU offload threshold')
  const costsMs = [0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]
  const off = full ? await offload(upstreamUrl, SWEEP, costsMs, spinIterationsPerMs) : undefined
  if (full) progress('a shifting cost: inline, pool and CPU_JOBS=auto')
  const shift = full
    ? await measureShift(upstreamUrl, {
      lowMs: 0.05,
      highMs: 2,
      phaseMs: 4000,
      settleMs: 1000,
      binMs: 100,
      connections: 2 * availableParallelism(),
      repeats: SHIFT_ROUNDS,
      warmupRounds: 1,
      threads: availableParallelism(),
      spinIterationsPerMs
    }, (step) => progress(step))
    : undefined
  return {
    directFibPerS,
    directFibPerSEach,
    ...(overhead === undefined ? {} : { overhead }),
    naiveMixed,
    performanceTester: tester,
    ...(mem === undefined ? {} : { memory: mem }),
    ...(off === undefined ? {} : { offload: off }),
    ...(shift === undefined ? {} : { shift })
  }
}
