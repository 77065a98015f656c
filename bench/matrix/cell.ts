import type { Mode } from '../../src/config.js'
import { cpuSecondsEach, machineCpuSeconds, processTree, sampleRss, untilQuiet } from '../lib/proc.js'
import { NO_SHEDDING, startServer, type ServerProcess } from '../../test/support/server-process.js'
import { loadDefaults, type LoadOptions, TRIVIAL_MIX } from '../load/options.js'
import { runLoad, type LoadReport } from '../load/run.js'
import { orderOf, roundOrder, type RoundOrder } from './order.js'
import type { CellSpec, Load, Plan } from './plan.js'

export interface Measurement {
  jobsPerS: number
  p50Ms: number
  p99Ms: number
  errors: Record<string, number>
  errorCount: number
  /**
   * Jobs not answered within the job timeout, and jobs still waiting when the window closed
   * (absent from runs made before they were counted).
   */
  timedOut?: number
  abandoned?: number
  /** Whole server tree: primary, workers, their threads (the shared delay service is not in it). */
  peakRssBytes: number
  /** The worst process's event-loop delay p99 over the window, from /metrics. */
  loopDelayP99Ms: number
  /**
   * CPU seconds the server tree used between two readings `cpuSpanS` apart (absent from runs made
   * before it was recorded); the readings are not the load's counting window, so compare rates.
   */
  cpuS: number
  cpuSpanS?: number
  /**
   * The same CPU seconds per process of the tree, the server's own process first (the primary,
   * where it has workers): where the cores went, e.g. whether one cluster worker sat idle.
   */
  cpuSByProcess?: number[]
  /** The background load's figures (the mixed row's CPU jobs). */
  background?: { jobsPerS: number, p99Ms: number, errorCount: number }
  /**
   * How long the window waited for the machine to go quiet after the one before (untilQuiet), in
   * ms (absent from runs that did not wait: there a window could start while the server measured
   * before it still worked through what its load had left).
   */
  quietWaitMs?: number
  /**
   * Over the same span as `cpuS` (absent from runs before they were recorded): the whole machine's
   * busy CPU seconds, this process's (the load client's), and the time the hypervisor gave the
   * machine's cores to other guests (steal). The machine's less the server tree's and the
   * client's is what other processes took.
   */
  machineBusyS?: number
  clientS?: number
  stealS?: number
  /**
   * ms the window's load spent opening its connections before its clock started (LoadReport.openMs;
   * absent from runs before HTTP connections were opened first: there they opened inside the ramp).
   */
  openMs?: number
}

export interface CellResult {
  model: Mode
  cell: CellSpec
  startMs: number
  runs: Measurement[]
}

export function loadOptions (url: string, load: Load, durationS: number): LoadOptions {
  // A window ends on time: jobs still waiting then are abandoned, and count with their age. Its
  // connections are open before it starts, over HTTP as over WebSocket: a window measures jobs in
  // flight, not how fast a server takes new connections.
  return loadDefaults(url, { duration: durationS, cut: true, openFirst: true, ...load })
}

/** /metrics, or '' from a server that has none (the reference servers). */
export async function scrape (url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`)
  const text = await res.text()
  return res.ok ? text : ''
}

const sumOf = (metrics: string, name: string): number =>
  [...metrics.matchAll(new RegExp(`^${name}\\{pid="\\d+"\\} (\\S+)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0)

/** Pool threads running, summed over the server's processes, from /metrics (0 without a pool or /metrics). */
export async function poolThreads (url: string): Promise<number> {
  return sumOf(await scrape(url), 'pool_threads')
}

/** How many jobs of `task` a server has answered inline and on its pool, from its /metrics text. */
export function jobsByPlacement (metrics: string, task: string): { inline: number, pool: number } {
  const count = { inline: 0, pool: 0 }
  for (const m of metrics.matchAll(/^jobs_total\{([^}]*)\} (\S+)$/gm)) {
    const labels = m[1] ?? ''
    if (!labels.includes(`task="${task}"`) || !labels.includes('outcome="ok"')) continue
    if (labels.includes('via="inline"')) count.inline += Number(m[2])
    else if (labels.includes('via="pool"')) count.pool += Number(m[2])
  }
  return count
}

/** CPU_JOBS=auto: the pool round trip each process estimates, the largest, in ms (undefined without one). */
export function autoRoundTripMs (metrics: string): number | undefined {
  const values = [...metrics.matchAll(/^auto_pool_round_trip_ms\{[^}]*\} (\S+)$/gm)].map((m) => Number(m[1]))
  return values.length === 0 ? undefined : Math.max(...values)
}

/** The largest per-process event-loop delay p99 in a /metrics text, in ms. */
export function worstLoopDelayP99Ms (metrics: string): number {
  let worst = 0
  for (const m of metrics.matchAll(/^event_loop_delay_seconds\{pid="\d+",quantile="0\.99"\} (\S+)$/gm)) worst = Math.max(worst, Number(m[1]))
  return worst * 1000
}

/**
 * One window: the load starts, ramps up for `plan.rampS` (connections open, jobs in flight reach
 * their number, their start times spread), and only what completes after that is counted.
 */
/** What a cell reports of the traffic beside its own. */
function summary (background: LoadReport): NonNullable<Measurement['background']> {
  return { jobsPerS: background.jobsPerS, p99Ms: background.latencyMs.p99, errorCount: background.failed }
}

const hundredths = (v: number): number => Math.round(v * 100) / 100

async function measure (server: ServerProcess, spec: CellSpec, plan: Pick<Plan, 'rampS' | 'windowS'>): Promise<Measurement> {
  const pid = server.proc.pid as number
  // The tree is read once, before the load: reading every process in /proc on a saturated machine
  // took up to a second, which shortened the span between the CPU readings.
  const tree = await processTree(pid)
  const load = (l: Load, onClockStart?: () => void): Promise<LoadReport> => runLoad(
    { ...loadOptions(server.url, l, plan.rampS + plan.windowS), rampS: plan.rampS }, undefined, onClockStart
  )
  // The CPU readings start a ramp after the load's clock, once its connections are open.
  let clockStarted: () => void = () => {}
  const started = new Promise<void>((resolve) => { clockStarted = resolve })
  const running = Promise.all([
    load(spec.load, clockStarted),
    spec.background === undefined ? undefined : load(spec.background)
  ])
  await Promise.race([started, running])
  await new Promise((resolve) => setTimeout(resolve, plan.rampS * 1000))
  // CPU first: a /metrics scrape can wait behind CPU jobs on a busy loop, most of a short window.
  const cpu0 = await cpuSecondsEach(tree)
  const machine0 = machineCpuSeconds()
  const client0 = process.cpuUsage()
  const cpuFrom = performance.now()
  await scrape(server.url) // opens the window for the event-loop figures
  const rss = sampleRss(tree)
  const [main, background] = await running as [LoadReport, LoadReport | undefined]
  const { peakBytes } = await rss.stop()
  const cpuSByProcess = (await cpuSecondsEach(tree)).map((s, i) => hundredths(s - (cpu0[i] ?? 0)))
  const machine1 = machineCpuSeconds()
  const client = process.cpuUsage(client0)
  const cpuS = cpuSByProcess.reduce((a, b) => a + b, 0)
  const cpuSpanS = (performance.now() - cpuFrom) / 1000
  const metrics = await scrape(server.url)
  const loopDelayP99Ms = metrics === '' ? Number.NaN : worstLoopDelayP99Ms(metrics)
  return {
    jobsPerS: main.jobsPerS,
    p50Ms: main.latencyMs.p50,
    p99Ms: main.latencyMs.p99,
    errors: main.errors,
    errorCount: main.failed,
    timedOut: main.timedOut,
    abandoned: main.abandoned,
    peakRssBytes: peakBytes,
    loopDelayP99Ms,
    cpuS: hundredths(cpuS),
    cpuSpanS: hundredths(cpuSpanS),
    cpuSByProcess,
    machineBusyS: hundredths(machine1.busy - machine0.busy),
    clientS: hundredths((client.user + client.system) / 1e6),
    stealS: hundredths(machine1.steal - machine0.steal),
    openMs: main.openMs,
    ...(background === undefined ? {} : { background: summary(background) })
  }
}

/** Warm-up rounds go on until throughput settles within this share of the round before. */
const SETTLED = 0.1

/**
 * One row: a fresh server tree per model, then each cell of the row in turn, each model warmed up
 * and the models measured in alternation, `plan.repeats` windows each; then the servers are stopped.
 * `beside`: servers that are not models (a reference the row is compared with), measured in the
 * same alternation, so that they meet the same machine as the models; their windows come back
 * apart, per cell. `order`: how the windows' rounds were ordered.
 */
export async function runRow (
  models: readonly Mode[], specs: CellSpec[], plan: Plan, upstreamUrl: string, env: Record<string, string> = {},
  beside: ReadonlyArray<() => Promise<ServerProcess>> = []
): Promise<{ results: CellResult[], beside: Measurement[][][], order: RoundOrder }> {
  const measured = await runOnAll(
    [
      ...models.map((model) => async () =>
        await startServer({ ...NO_SHEDDING, ...env, MODE: model, UPSTREAM_URL: upstreamUrl })),
      ...beside
    ],
    specs,
    plan
  )
  const results = models.flatMap((model, k) => {
    const { startMs, runs } = measured[k] as { startMs: number, runs: Measurement[][] }
    return specs.map((cell, i) => ({ model, cell, startMs, runs: runs[i] ?? [] }))
  })
  return {
    results,
    beside: measured.slice(models.length).map(({ runs }) => runs),
    order: orderOf(models.length + beside.length)
  }
}

type RunPlan = Pick<Plan, 'jitWarmupS' | 'firstWarmupS' | 'warmupS' | 'maxWarmupRounds' | 'rampS' | 'windowS' | 'repeats'>

/**
 * A fresh server's first load: trivial jobs (TRIVIAL_MIX, which takes a CPU job's path in every
 * model) over the transport, connections and jobs in flight of `load`, for `seconds`, so that what
 * its cells measure runs V8's optimised code rather than code still being compiled (JIT_WARMUP in
 * bench/overhead/measure.ts has the figures). The row's own tasks then get their warm-up cell by cell.
 *
 * Its first /metrics answer comes first, and the load after it. A window scrapes its server
 * (measure()), and a fresh server serves fewer jobs for about a second after its first scrape:
 * warmed with `spin` 0.02 ms (4 connections), then a 1 s window, a scrape by curl and four more,
 * two `auto` and two `event-loop` servers served 7,542, 9,889, 9,540 and 11,109 jobs/s in the
 * window right after it and 9,384-14,974 in the three after that; four not scraped, 13,338-14,391
 * in the same four windows. Left to a row's first window, it landed in each server's first
 * window of the row's first cell.
 */
export async function warmJit (server: ServerProcess, load: Load, seconds: number): Promise<void> {
  await scrape(server.url)
  await runLoad(loadOptions(server.url, { ...load, rate: undefined, mix: TRIVIAL_MIX }, seconds))
}

/**
 * Until throughput settles: a pool that starts threads on demand (`threads`) is still starting
 * them, each a V8 isolate loading its modules, for seconds after a new load arrives.
 */
async function warmUp (server: ServerProcess, spec: CellSpec, plan: RunPlan, first: boolean): Promise<void> {
  let last = Number.NaN
  if (spec.minWarmupS !== undefined) await runLoad(loadOptions(server.url, spec.load, spec.minWarmupS))
  for (let round = 0; round < plan.maxWarmupRounds; round++) {
    const [report] = await Promise.all([
      runLoad(loadOptions(server.url, spec.load, first && round === 0 ? plan.firstWarmupS : plan.warmupS)),
      spec.background === undefined ? undefined : runLoad(loadOptions(server.url, spec.background, plan.warmupS))
    ])
    if (last > 0 && Math.abs(report.jobsPerS - last) <= SETTLED * last) break
    last = report.jobsPerS
  }
}

/**
 * Several servers side by side, measured in alternation: for each spec every server is warmed up,
 * then window 1 of each, window 2 of each, and so on. This machine's speed drifts by tens of percent
 * over minutes (bench/README.md), so servers measured one after another would differ by the drift;
 * alternated, the drift lands on every one of them alike and shows in each one's spread. Each
 * warm-up and each window starts on a quiet machine (untilQuiet): a server whose load has stopped
 * may still work through the jobs it had queued, or its database through its backlog; in a run of
 * 2026-12-06 (bench/README.md) three of the six user-service windows right after `threads` served
 * a twentieth to a sixth of the same model's others. Each round of windows takes the servers in
 * another order (roundOrder): a server measured right after another runs on the caches and cores
 * that one has just used, and in one fixed order each model would always follow the same other
 * one. A server waits idle while the others are measured (its pool keeps its threads for 30 s).
 */
export async function runOnAll (
  starts: ReadonlyArray<() => Promise<ServerProcess>>, specs: CellSpec[], plan: RunPlan
): Promise<Array<{ startMs: number, runs: Measurement[][] }>> {
  const servers: ServerProcess[] = []
  try {
    for (const start of starts) servers.push(await start())
    const first = specs[0]
    const jit = plan.jitWarmupS ?? 0
    if (first !== undefined && jit > 0) {
      for (const server of servers) {
        await untilQuiet()
        await warmJit(server, first.load, jit)
      }
    }
    const runs = servers.map((): Measurement[][] => [])
    for (const [s, spec] of specs.entries()) {
      for (const server of servers) {
        await untilQuiet()
        await warmUp(server, spec, plan, s === 0)
      }
      const windows = servers.map((): Measurement[] => [])
      for (let i = 0; i < plan.repeats; i++) {
        for (const k of roundOrder(servers.length, i)) {
          const quietWaitMs = await untilQuiet()
          windows[k]?.push({ ...await measure(servers[k] as ServerProcess, spec, plan), quietWaitMs })
        }
      }
      windows.forEach((w, k) => runs[k]?.push(w))
    }
    return servers.map((server, k) => ({ startMs: Math.round(server.startMs), runs: runs[k] ?? [] }))
  } catch (err) {
    const dead = servers.find(({ proc }) => proc.exitCode !== null || proc.signalCode !== null)
    if (dead === undefined) throw err
    const last = dead.logs.slice(-5).map((l) => JSON.stringify(l)).join('\n')
    const { exitCode, signalCode } = dead.proc
    throw new Error(`the server died (exit ${exitCode}, signal ${signalCode}):\n${dead.stderr().slice(-2000)}\n${last}`, { cause: err })
  } finally {
    await Promise.all(servers.map(async (server) => await server.stop()))
  }
}
