import { monitorEventLoopDelay, performance, type EventLoopUtilization } from 'node:perf_hooks'
import { REFUSAL_PAYOFF, type LoopDelay } from '../admission.js'
import { AggregatorRegistry, collectDefaultMetrics, Gauge, type GaugeConfiguration, type Metric } from 'prom-client'
import { JobCounter, JobHistogram } from './jobs.js'
import type { JobEvent } from '../jobs.js'
import type { AutoRule } from '../placement/auto-rule.js'
import type { ThreadPool } from '../placement/pool.js'
import type { WsConnections } from '../ws/connections.js'

/** How often the event-loop delay is sampled; each sample counts this interval in, so it is taken back out. */
export const LOOP_RESOLUTION_MS = 10

/** A reading of a monitorEventLoopDelay histogram (ns) as the loop's delay in ms, its resolution taken back out. */
export const loopDelayMs = (ns: number): number => Number.isFinite(ns) ? Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS) : 0

const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/**
 * This process's metrics. Each cluster worker keeps its own; /metrics answers with the sum over
 * all of them (see metricsText). Gauges that only mean something per process carry a `pid` label.
 * Event-loop delay and utilization are measured since the previous scrape, so that a benchmark
 * reads them for its own window: scrape, load, scrape.
 */
export class ServerMetrics {
  // An AggregatorRegistry rather than a plain one: constructing it is what makes a cluster worker
  // answer the primary's requests for its metrics.
  readonly registry = new AggregatorRegistry()
  readonly #jobs = new JobCounter('jobs_total', 'Jobs answered, by task, kind, placement and outcome (ok or error code)', ['task', 'kind', 'via', 'outcome'])
  readonly #duration = new JobHistogram('job_duration_seconds', 'Time from a job\'s arrival to its answer, answered jobs', ['task', 'kind', 'via'], DURATION_BUCKETS)
  readonly #queueWait = new JobHistogram('job_queue_wait_seconds', 'Time a job waited for a pool thread', ['kind', 'via'], DURATION_BUCKETS)
  readonly #refused = new JobCounter('requests_refused_total', 'Requests refused at admission before their body was read, and WebSocket job frames refused before they became jobs, by error code', ['code'])
  readonly #autoDecisions = new JobCounter('auto_decisions_total', 'CPU_JOBS=auto: answered CPU jobs by task, where they ran and why', ['task', 'via', 'reason'])
  readonly #loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS })
  #elu: EventLoopUtilization = performance.eventLoopUtilization()

  constructor (sources: { pool?: ThreadPool, websockets?: WsConnections, auto?: AutoRule, loop?: LoopDelay } = {}) {
    const registers = [this.registry]
    const pid = String(process.pid)
    AggregatorRegistry.setRegistries(registers)
    // Labelled by pid, so that summing over the cluster keeps each process's memory, handles and CPU apart.
    collectDefaultMetrics({ register: this.registry, labels: { pid } })
    for (const metric of [this.#jobs, this.#duration, this.#queueWait, this.#refused, this.#autoDecisions]) {
      this.registry.registerMetric(metric as unknown as Metric)
    }
    this.#loopDelay.enable()
    const loopDelay = this.#loopDelay
    // Each gauge reads its value when scraped (prom-client calls collect() with the gauge as this).
    const gauge = (options: Omit<GaugeConfiguration<string>, 'registers'>): void => {
      this.registry.registerMetric(new Gauge({ ...options, registers: [] }) as unknown as Metric)
    }
    gauge({
      name: 'event_loop_delay_seconds',
      help: 'Event-loop delay since the previous scrape, per process',
      labelNames: ['pid', 'quantile'],
      collect () {
        const s = (ns: number): number => loopDelayMs(ns) / 1000
        this.set({ pid, quantile: '0.5' }, s(loopDelay.percentile(50)))
        this.set({ pid, quantile: '0.99' }, s(loopDelay.percentile(99)))
        this.set({ pid, quantile: '1' }, s(loopDelay.max))
        loopDelay.reset()
      }
    })
    const self = this
    gauge({
      name: 'event_loop_utilization',
      help: 'Share of time the event loop was busy since the previous scrape, per process',
      labelNames: ['pid'],
      collect () {
        const now = performance.eventLoopUtilization()
        this.set({ pid }, performance.eventLoopUtilization(now, self.#elu).utilization)
        self.#elu = now
      }
    })
    const loop = sources.loop
    if (loop !== undefined) {
      gauge({
        name: 'event_loop_refusal_payoff',
        help: `What an admitted job's own work costs the event loop over what a request costs it; the loop sheds only from ${REFUSAL_PAYOFF}, per process`,
        labelNames: ['pid'],
        collect () { if (loop.refusalPayoff !== undefined) this.set({ pid }, loop.refusalPayoff) }
      })
    }
    const pool = sources.pool
    if (pool !== undefined) {
      const perProcess = (name: string, help: string, read: () => number): void =>
        gauge({ name, help, labelNames: ['pid'], collect () { this.set({ pid }, read()) } })
      perProcess('pool_threads', 'Pool threads running, per process', () => pool.threads)
      perProcess('pool_max_threads', 'Pool threads allowed, per process', () => pool.maxThreads)
      perProcess('pool_queue_depth', 'Jobs waiting for a pool thread, per process', () => pool.queued)
      perProcess('pool_utilization', 'Share of the pool\'s thread time spent running jobs since it started, per process', () => pool.utilization)
      perProcess('pool_wait_calibration', 'How many times itself admission counts the pool line\'s wait forecast for (1 while jobs start on time), per process', () => pool.waitCalibration)
    }
    const auto = sources.auto
    if (auto !== undefined) {
      gauge({
        name: 'auto_task_run_ms',
        help: 'CPU_JOBS=auto: each task\'s estimated run time and where its jobs go now (placement), per process',
        labelNames: ['pid', 'task', 'placement', 'reason'],
        collect () {
          this.reset()
          for (const [task, t] of auto.tasks()) {
            if (t.runMs !== undefined) this.set({ pid, task, placement: t.placement, reason: t.reason }, t.runMs)
          }
        }
      })
      gauge({
        name: 'auto_pool_round_trip_ms',
        help: 'CPU_JOBS=auto: what a pool job costs beyond its run and its wait for a thread (the crossing), estimated, per process',
        labelNames: ['pid'],
        collect () { if (auto.roundTripMs !== undefined) this.set({ pid }, auto.roundTripMs) }
      })
    }
    const websockets = sources.websockets
    if (websockets !== undefined) {
      gauge({ name: 'websocket_connections', help: 'Open job WebSockets', collect () { this.set(websockets.stats().connections) } })
      gauge({ name: 'websocket_jobs_in_flight', help: 'Jobs in flight over WebSockets', collect () { this.set(websockets.stats().inFlight) } })
    }
  }

  /** A request or a WebSocket frame refused before it became a job (jobs_total counts the jobs refused after). */
  requestRefused (code: string): void {
    this.#refused.inc(code)
  }

  jobSettled (e: JobEvent): void {
    this.#jobs.inc(e.task, e.kind, e.via, e.outcome)
    if (e.autoReason !== undefined) this.#autoDecisions.inc(e.task, e.via, e.autoReason)
    if (e.outcome !== 'ok') return
    if (e.totalMs !== undefined) this.#duration.observe(e.totalMs / 1000, e.task, e.kind, e.via)
    if (e.via === 'pool' && e.queuedMs !== undefined) this.#queueWait.observe(e.queuedMs / 1000, e.kind, e.via)
  }

  close (): void {
    this.#loopDelay.disable()
    this.registry.clear()
  }
}
