import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram } from 'node:perf_hooks'
import type { JobEvent } from '../jobs.js'
import type { AutoRule, AutoVia, AutoReason } from '../placement/auto-rule.js'
import type { ThreadPool } from '../placement/pool.js'
import type { WsConnections } from '../ws/connections.js'
import { LOOP_RESOLUTION_MS, loopDelayMs } from '../metrics/server.js'

/**
 * Upper bounds of the latency buckets, in ms: eight to a decade from 0.1 ms to 30 s, then the rest.
 * Buckets (not percentiles) are what a process reports, so that the cluster's p50 and p99 are taken
 * over every process's jobs together; a percentile read from them is its bucket's upper bound, at
 * most a factor 10^(1/8) (1.33) over the true one.
 */
export const LATENCY_BOUNDS_MS: readonly number[] = Object.freeze([
  ...Array.from({ length: 45 }, (_, k) => Number((10 ** ((k - 8) / 8)).toPrecision(3))),
  Number.POSITIVE_INFINITY
])

/** The `share` quantile (0.5, 0.99) of bucketed counts, as its bucket's upper bound; NaN when empty. */
export function quantileMs (buckets: readonly number[], share: number): number {
  const total = buckets.reduce((a, b) => a + b, 0)
  if (total === 0) return Number.NaN
  let seen = 0
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i] ?? 0
    if (seen >= share * total) return LATENCY_BOUNDS_MS[i] as number
  }
  return Number.POSITIVE_INFINITY
}

function bucketOf (ms: number): number {
  // Eight to a decade from 0.1 ms: the index is ceil(8 * log10(ms) + 8), kept within the bounds.
  const k = Math.ceil(8 * Math.log10(Math.max(ms, 1e-3)) + 8 - 1e-9)
  return Math.min(LATENCY_BOUNDS_MS.length - 1, Math.max(0, k))
}

/** What one process did over one interval, as the dashboard shows it. */
export interface ProcessSample {
  pid: number
  /** The cluster worker's id; absent in a one-process server. */
  worker?: number
  uptimeS: number
  intervalS: number
  /** Jobs answered in the interval, by task and by where they ran (`inline`, `pool`, `event-loop`). */
  jobs: Record<string, Record<string, number>>
  /** Jobs and requests answered with an error in the interval, by code (shed ones are OVERLOADED). */
  errors: Record<string, number>
  /** Answered jobs' time from arrival to answer, counted in LATENCY_BOUNDS_MS buckets. */
  latency: number[]
  loop: { delayP50Ms: number, delayP99Ms: number, delayMaxMs: number, utilization: number }
  /** `busy`: the share of the pool's thread time its jobs ran in the interval (their run times, summed). */
  pool?: { threads: number, maxThreads: number, queued: number, busy: number }
  websockets: { connections: number, inFlight: number }
  auto?: {
    roundTripMs: number | undefined
    tasks: Array<{ key: string, runMs: number | undefined, placement: AutoVia, reason: AutoReason, jobs: number }>
  }
  rssBytes: number
}

/** Sampling stops this long after the last sample was asked for: nothing is counted while no page is open. */
export const IDLE_MS = 15_000

/**
 * One process's figures for the dashboard: it counts jobs only while someone is reading them (a
 * sample was asked for within IDLE_MS), and each sample covers the time since the one before. Its
 * own event-loop delay monitor, apart from /metrics' (which resets on every scrape that a
 * benchmark's window depends on).
 */
export class ProcessSampler {
  readonly #sources: { pool?: ThreadPool, websockets?: WsConnections, auto?: AutoRule, worker?: number }
  #active = false
  #idle: NodeJS.Timeout | undefined
  #since = performance.now()
  #jobs = new Map<string, Map<string, number>>()
  #errors = new Map<string, number>()
  #latency = new Array<number>(LATENCY_BOUNDS_MS.length).fill(0)
  #poolRunMs = 0
  #loop: IntervalHistogram | undefined
  #elu: EventLoopUtilization | undefined

  constructor (sources: { pool?: ThreadPool, websockets?: WsConnections, auto?: AutoRule, worker?: number } = {}) {
    this.#sources = sources
  }

  get active (): boolean {
    return this.#active
  }

  /** A job answered (or refused) in this process. */
  record (e: Pick<JobEvent, 'task' | 'via' | 'outcome' | 'totalMs' | 'runMs'>): void {
    if (!this.#active) return
    if (e.outcome !== 'ok') {
      this.refused(e.outcome)
      return
    }
    let byVia = this.#jobs.get(e.task)
    if (byVia === undefined) this.#jobs.set(e.task, byVia = new Map())
    byVia.set(e.via, (byVia.get(e.via) ?? 0) + 1)
    if (e.via === 'pool') this.#poolRunMs += e.runMs ?? 0
    if (e.totalMs !== undefined) {
      const k = bucketOf(e.totalMs)
      this.#latency[k] = (this.#latency[k] ?? 0) + 1
    }
  }

  /** A request or WebSocket frame refused before it became a job (shed, unauthorised, a connection's cap), by code. */
  refused (code: string): void {
    if (this.#active) this.#errors.set(code, (this.#errors.get(code) ?? 0) + 1)
  }

  /** The figures since the previous sample; the first one starts the counting. */
  sample (): ProcessSample {
    const now = performance.now()
    if (!this.#active) this.#start(now)
    this.#idle?.refresh()
    const loop = this.#loop as IntervalHistogram
    const elu = performance.eventLoopUtilization()
    const { pool, websockets, auto, worker } = this.#sources
    const sample: ProcessSample = {
      pid: process.pid,
      ...(worker === undefined ? {} : { worker }),
      uptimeS: Math.round(process.uptime()),
      intervalS: (now - this.#since) / 1000,
      jobs: Object.fromEntries([...this.#jobs].map(([task, byVia]) => [task, Object.fromEntries(byVia)])),
      errors: Object.fromEntries(this.#errors),
      latency: this.#latency,
      loop: {
        delayP50Ms: loopDelayMs(loop.percentile(50)),
        delayP99Ms: loopDelayMs(loop.percentile(99)),
        delayMaxMs: loopDelayMs(loop.max),
        utilization: performance.eventLoopUtilization(elu, this.#elu).utilization
      },
      ...(pool === undefined ? {} : { pool: this.#poolFigures(pool, now) }),
      websockets: websockets?.stats() ?? { connections: 0, inFlight: 0 },
      ...(auto === undefined
        ? {}
        : {
            auto: {
              roundTripMs: auto.roundTripMs,
              tasks: [...auto.tasks()].map(([key, t]) =>
                ({ key, runMs: t.runMs, placement: t.placement, reason: t.reason, jobs: t.jobs }))
            }
          }),
      rssBytes: process.memoryUsage.rss()
    }
    this.#since = now
    this.#elu = elu
    this.#jobs = new Map()
    this.#errors = new Map()
    this.#latency = new Array<number>(LATENCY_BOUNDS_MS.length).fill(0)
    this.#poolRunMs = 0
    loop.reset()
    return sample
  }

  stop (): void {
    clearTimeout(this.#idle)
    this.#idle = undefined
    this.#loop?.disable()
    this.#active = false
  }

  #poolFigures (pool: ThreadPool, now: number): NonNullable<ProcessSample['pool']> {
    const busy = this.#poolRunMs / Math.max(now - this.#since, 1e-3) / pool.maxThreads
    return { threads: pool.threads, maxThreads: pool.maxThreads, queued: pool.queued, busy }
  }

  #start (now: number): void {
    this.#active = true
    this.#since = now
    this.#elu = performance.eventLoopUtilization()
    this.#loop ??= monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS })
    this.#loop.enable()
    this.#idle = setTimeout(() => this.stop(), IDLE_MS)
    this.#idle.unref()
  }
}
