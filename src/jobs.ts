import { performance } from 'node:perf_hooks'
import type { Config } from './config.js'
import { usesPool } from './config.js'
import type { LoopDelay } from './admission.js'
import { errors, isErrorCode, toErrorBody, type ErrorBody } from './errors.js'
import { LocalPlacement } from './placement/local.js'
import { PoolPlacement, ThreadPool } from './placement/pool.js'
import type { JobAbort, Placement, RunOutcome, Via } from './placement/types.js'
import { AutoRule, type AutoDecision, type AutoReason, type AutoVia } from './placement/auto-rule.js'
import type { TaskRegistry } from './tasks/registry.js'
import type { AnyTask, TaskKind } from './tasks/types.js'
import { backendsConfig, type BackendsConfig } from './backends/connections.js'
import type { BackendHandles } from './backends/handles.js'

export interface JobTiming {
  queuedMs: number
  runMs: number
  totalMs: number
}

/** A job's answer, the same whichever way it came (HTTP, a batch, a WebSocket frame). */
export interface JobAnswer {
  task: string
  kind: TaskKind
  result: unknown
  timing: JobTiming
  ranOn: { pid: number, threadId: number, via: Via }
}

/** What the runner tells its observer (the metrics) of each job as it ends, answered or failed. */
export interface JobEvent {
  /** A catalogue name, or "(unknown)": labels never take a client's string. */
  task: string
  kind: string
  via: string
  /** "ok" or an error code of the catalogue. */
  outcome: string
  queuedMs?: number
  runMs?: number
  totalMs?: number
  /** Why `CPU_JOBS=auto` placed the job where it ran; absent where the configuration placed it. */
  autoReason?: AutoReason
}

/** What a batch item and a WebSocket frame answer: the job's answer, or its error as an HTTP error body says it. */
export type JobOutcome = ({ ok: true } & JobAnswer) | { ok: false, error: ErrorBody }

/**
 * Told of each job that can be cancelled (not an inline one) as it starts, with its abort: the
 * caller aborts it when its client goes away; the runner aborts it at JOB_TIMEOUT_MS. Either way a
 * queued job never starts, a pool job's thread is terminated (CPU) or told to stop (I/O), and an
 * I/O job on the event loop stops waiting.
 */
export type Control = (abort: JobAbort) => void

const NEVER = new AbortController()

const round = (ms: number): number => Math.round(ms * 1000) / 1000

/** Any failure of a job as an error of the catalogue: coded errors as they are, anything else TASK_FAILED. */
function asJobError (err: unknown, task: AnyTask | undefined): Error & { code: string } {
  const code = (err as { code?: unknown } | null)?.code
  return isErrorCode(code) ? err as Error & { code: string } : new errors.TASK_FAILED(task?.name, { cause: err })
}

/**
 * Runs jobs where the configuration puts them: one placement for CPU tasks, one for I/O tasks,
 * both chosen here once. The one job path of every transport: checks the job (once), times it,
 * enforces JOB_TIMEOUT_MS, and turns every failure into an error of the catalogue.
 */
export class JobRunner {
  readonly #placements: Readonly<Record<TaskKind, Placement>>
  readonly pool: ThreadPool | undefined
  /** `CPU_JOBS=auto`: the rule that places each CPU job, and the two places it chooses between. */
  readonly #auto: { rule: AutoRule, places: Readonly<Record<AutoVia, Placement>> } | undefined

  constructor (
    readonly registry: TaskRegistry,
    private readonly config: Pick<Config, 'cpuJobs' | 'ioJobs' | 'threads' | 'minThreads' | 'maxQueue' | 'jobTimeoutMs' | 'threadHeapMb' | 'faultTasks' | 'logLevel' | 'shedTargetMs' | 'shedIntervalMs' | 'upstreamUrl'> & BackendsConfig,
    /** Told of every job's end, answered or failed: the metrics. */
    private readonly observer?: (event: JobEvent) => void,
    /** This process's PostgreSQL and Redis, for the `db` and `cache` tasks on the event loop. */
    backends: BackendHandles = {},
    /**
     * The event loop's queueing delay, when shedding on it is on: checked again as each inline job
     * is about to run, not only when its request arrived. Fastify reads a body after the request's
     * hooks have run, so a turn of the loop could admit hundreds of requests before the first of
     * their jobs ran; checked here, the inline work admitted into one turn is what the bound
     * allows. Only inline jobs: they are the work that makes the loop late. An I/O job or a pool
     * job costs the loop microseconds to start, and a burst of thousands of WebSocket frames,
     * read in one turn, would read its own reading as a standing queue (an HTTP request was
     * checked when it arrived; the pool has its own queue and rule).
     */
    private readonly loop?: LoopDelay
  ) {
    const pool = usesPool(config)
      ? new ThreadPool({
        minThreads: config.minThreads,
        maxThreads: config.threads,
        maxQueue: config.maxQueue,
        heapMb: config.threadHeapMb,
        shedding: { targetMs: config.shedTargetMs, intervalMs: config.shedIntervalMs },
        workerData: {
          faultTasks: config.faultTasks,
          upstreamUrl: config.upstreamUrl,
          backends: backendsConfig(config),
          logLevel: config.logLevel
        }
      })
      : undefined
    const onPool = (): Placement => new PoolPlacement(pool as ThreadPool)
    const resources = { upstreamUrl: config.upstreamUrl }
    this.pool = pool
    const inline = new LocalPlacement('inline', resources)
    this.#auto = config.cpuJobs === 'auto' ? { rule: new AutoRule(), places: Object.freeze({ inline, pool: onPool() }) } : undefined
    this.#placements = Object.freeze({
      cpu: config.cpuJobs === 'inline' ? inline : onPool(),
      io: config.ioJobs === 'pool' ? onPool() : new LocalPlacement('event-loop', { ...resources, ...backends })
    })
  }

  /**
   * Runs one job (`{ task, input }`, as a client sent it) to its answer, or rejects with an error
   * of the catalogue. `where` names the job in a BAD_INPUT message (`jobs[3]`).
   */
  async run (job: unknown, control?: Control, where?: string): Promise<JobAnswer> {
    const start = performance.now()
    let task: AnyTask | undefined
    let placement: Placement | undefined
    try {
      const resolved = this.registry.resolve(job, where)
      task = resolved.task
      placement = this.#placements[task.kind]
      let decision: AutoDecision | undefined
      let autoKey = ''
      if (task.kind === 'cpu' && this.#auto !== undefined) {
        autoKey = this.#auto.rule.keyOf(task.name, resolved.input)
        decision = this.#auto.rule.decide(autoKey, start, this.loop?.delayMs())
        placement = this.#auto.places[decision.via]
      }
      if (placement.via === 'inline') {
        const refusal = this.loop?.refusal()
        if (refusal !== undefined) throw refusal
      }
      const placedAt = decision === undefined ? 0 : performance.now()
      const outcome = await this.#runPlaced(placement, task, resolved.input, control)
      const end = performance.now()
      const totalMs = round(end - start)
      // A pool job's time here less its wait for a thread (in the pool's line, or for a thread
      // still starting): the crossing to a thread and back, what running it inline would save.
      if (decision !== undefined) {
        this.#auto?.rule.observe(autoKey, decision.via, outcome.runMs, end - placedAt - outcome.queuedMs, end)
      }
      this.observer?.({
        task: task.name, kind: task.kind, via: placement.via, outcome: 'ok', queuedMs: outcome.queuedMs, runMs: outcome.runMs, totalMs, autoReason: decision?.reason
      })
      return {
        task: task.name,
        kind: task.kind,
        result: outcome.result,
        timing: { queuedMs: round(outcome.queuedMs), runMs: round(outcome.runMs), totalMs },
        ranOn: { pid: process.pid, threadId: outcome.threadId, via: placement.via }
      }
    } catch (err) {
      // A job refused for its input still counts under its task's name, when that is in the catalogue.
      task ??= this.registry.taskOf(job)
      const failure = asJobError(err, task)
      this.observer?.({ task: task?.name ?? '(unknown)', kind: task?.kind ?? 'none', via: placement?.via ?? 'none', outcome: failure.code })
      throw failure
    }
  }

  /** As run(), but never rejects: the outcome as a batch item or a WebSocket frame carries it. */
  async settle (job: unknown, control?: Control, where?: string): Promise<JobOutcome> {
    try {
      return { ok: true, ...await this.run(job, control, where) }
    } catch (err) {
      return { ok: false, error: toErrorBody(err) }
    }
  }

  /**
   * The placement's run, bounded by JOB_TIMEOUT_MS: past it the job is answered TIMEOUT at once,
   * even if its task ignores the signal, and the abort frees what the job holds. A caller that
   * aborts the job (its client went away) is not waiting for the answer, so nothing listens for
   * that here: the job stops where it is, and settles when it does.
   */
  async #runPlaced (
    placement: Placement, task: AnyTask, input: unknown, control: Control | undefined
  ): Promise<RunOutcome> {
    // An inline job holds the event loop from start to end: no timer could fire and no abort could
    // land while it runs, so it gets neither (they would only cost every trivial job).
    if (placement.via === 'inline') return await placement.run(task, input, NEVER)
    const abort = placement.newAbort()
    control?.(abort)
    const { signal } = abort
    if (signal.aborted) throw signal.reason
    const timeoutMs = this.config.jobTimeoutMs
    return await new Promise<RunOutcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        const timeout = new errors.TIMEOUT(timeoutMs)
        abort.abort(timeout)
        reject(timeout)
      }, timeoutMs)
      placement.run(task, input, abort).then((outcome) => {
        clearTimeout(timer)
        resolve(outcome)
      }, (err: unknown) => {
        clearTimeout(timer)
        reject(signal.aborted ? signal.reason : err)
      })
    })
  }

  /** `CPU_JOBS=auto`'s rule, for /tasks and /metrics to show what it holds. */
  get auto (): AutoRule | undefined {
    return this.#auto?.rule
  }

  async close (): Promise<void> {
    await this.pool?.close()
  }
}
