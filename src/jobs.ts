import { performance } from 'node:perf_hooks'
import type { Config } from './config.js'
import { usesPool } from './config.js'
import { errors, isErrorCode } from './errors.js'
import { LocalPlacement } from './placement/local.js'
import { PoolPlacement, ThreadPool } from './placement/pool.js'
import type { Placement, RunOutcome, Via } from './placement/types.js'
import type { JobEvent } from './metrics.js'
import type { TaskRegistry } from './tasks/registry.js'
import type { AnyTask, TaskKind } from './tasks/types.js'
import { userServiceConfig, type UserService, type UserServiceConfig } from './backends/users.js'

export interface JobTiming {
  queuedMs: number
  runMs: number
  totalMs: number
}

export interface JobAnswer {
  task: string
  kind: TaskKind
  result: unknown
  timing: JobTiming
  ranOn: { pid: number, threadId: number, via: Via }
}

const NEVER = new AbortController().signal

const round = (ms: number): number => Math.round(ms * 1000) / 1000

/**
 * Runs jobs where the configuration puts them: one placement for CPU tasks, one for I/O tasks,
 * both chosen here once. Validates, times, enforces JOB_TIMEOUT_MS, and turns every failure into
 * an error of the catalogue.
 */
export class JobRunner {
  readonly #placements: Readonly<Record<TaskKind, Placement>>
  readonly pool: ThreadPool | undefined

  constructor (
    readonly registry: TaskRegistry,
    private readonly config: Pick<Config, 'cpuJobs' | 'ioJobs' | 'threads' | 'minThreads' | 'maxQueue' | 'jobTimeoutMs' | 'threadHeapMb' | 'faultTasks' | 'logLevel' | 'shedTargetMs' | 'shedIntervalMs'> & UserServiceConfig,
    /** Told of every job's end, answered or failed: the metrics. */
    private readonly observer?: (event: JobEvent) => void,
    /** This process's PostgreSQL and Redis, for the `db` and `cache` tasks on the event loop. */
    users?: UserService
  ) {
    const pool = usesPool(config)
      ? new ThreadPool({
        minThreads: config.minThreads,
        maxThreads: config.threads,
        maxQueue: config.maxQueue,
        upstreamUrl: config.upstreamUrl,
        heapMb: config.threadHeapMb,
        shedding: { targetMs: config.shedTargetMs, intervalMs: config.shedIntervalMs },
        workerData: { faultTasks: config.faultTasks, backends: userServiceConfig(config), logLevel: config.logLevel }
      })
      : undefined
    const onPool = (): Placement => new PoolPlacement(pool as ThreadPool)
    this.pool = pool
    this.#placements = Object.freeze({
      cpu: config.cpuJobs === 'pool' ? onPool() : new LocalPlacement('inline', config.upstreamUrl),
      io: config.ioJobs === 'pool' ? onPool() : new LocalPlacement('event-loop', config.upstreamUrl, users)
    })
  }

  /**
   * Runs one job to its answer, or rejects with an error of the catalogue. `cancel` is the
   * client's: when it aborts (the client went away) a queued job never starts, a pool job's thread
   * is terminated, and an I/O job on the event loop stops waiting. It may be given as a function
   * that makes it, called only for a job that can be cancelled (not an inline one).
   */
  async run (name: unknown, rawInput: unknown, cancel?: AbortSignal | (() => AbortSignal)): Promise<JobAnswer> {
    const start = performance.now()
    let task: AnyTask | undefined
    let placement: Placement | undefined
    try {
      const resolved = this.registry.resolve(name, rawInput)
      task = resolved.task
      placement = this.#placements[task.kind]
      const outcome = await this.#runPlaced(placement, task, resolved.input, cancel)
      const answer: JobAnswer = {
        task: task.name,
        kind: task.kind,
        result: outcome.result,
        timing: { queuedMs: round(outcome.queuedMs), runMs: round(outcome.runMs), totalMs: round(performance.now() - start) },
        ranOn: { pid: process.pid, threadId: outcome.threadId, via: placement.via }
      }
      this.observer?.({ task: task.name, kind: task.kind, via: placement.via, outcome: 'ok', queuedMs: answer.timing.queuedMs, totalMs: answer.timing.totalMs })
      return answer
    } catch (err) {
      // A job refused for its input still counts under its task's name, when that is in the catalogue.
      task ??= typeof name === 'string' ? this.registry.get(name) : undefined
      const failure = isErrorCode((err as { code?: unknown }).code) ? err as Error & { code: string } : new errors.TASK_FAILED(task?.name, { cause: err })
      this.observer?.({ task: task?.name ?? '(unknown)', kind: task?.kind ?? 'none', via: placement?.via ?? 'none', outcome: failure.code })
      throw failure
    }
  }

  /** The placement's run, raced against JOB_TIMEOUT_MS and the client's cancel, both of which abort it. */
  async #runPlaced (placement: Placement, task: AnyTask, input: unknown, cancelling: AbortSignal | (() => AbortSignal) | undefined): Promise<RunOutcome> {
    // An inline job holds the event loop from start to end: no timer could fire and no abort could
    // land while it runs, so it gets neither (they would only cost every trivial job).
    if (placement.via === 'inline') return await placement.run(task, input, NEVER)
    const cancel = typeof cancelling === 'function' ? cancelling() : cancelling
    if (cancel?.aborted === true) throw cancel.reason
    const timeoutMs = this.config.jobTimeoutMs
    const controller = new AbortController()
    let timer: NodeJS.Timeout | undefined
    let onCancel: (() => void) | undefined
    // The race answers on time even if a task ignores its signal; the abort frees the pool thread.
    const stopped = new Promise<never>((_resolve, reject) => {
      const stop = (err: unknown): void => {
        reject(err)
        controller.abort(err)
      }
      timer = setTimeout(() => stop(new errors.TIMEOUT(timeoutMs)), timeoutMs)
      if (cancel !== undefined) {
        onCancel = () => stop(cancel.reason)
        cancel.addEventListener('abort', onCancel, { once: true })
      }
    })
    try {
      return await Promise.race([placement.run(task, input, controller.signal), stopped])
    } catch (err) {
      throw controller.signal.aborted ? controller.signal.reason : err
    } finally {
      clearTimeout(timer)
      if (onCancel !== undefined) cancel?.removeEventListener('abort', onCancel)
    }
  }

  async close (): Promise<void> {
    await this.pool?.close()
  }
}
