import { performance } from 'node:perf_hooks'
import type { Config } from './config.js'
import { usesPool } from './config.js'
import type { LoopDelay } from './admission.js'
import { errors, isErrorCode, toErrorBody, type ErrorBody } from './errors.js'
import { LocalPlacement } from './placement/local.js'
import { PoolPlacement, ThreadPool } from './placement/pool.js'
import { QueueDispatch } from './placement/queue.js'
import { Deadlines } from './deadlines.js'
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
  /** Where it ran; `host` for a job a worker host ran (`DISPATCH=bullmq`), whose `pid` is that worker's. */
  ranOn: { host?: string, pid: number, threadId: number, via: Via }
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

/** A job on its way: what its answer and the auto rule need to know of it when it ends. */
interface PlacedJob {
  task: AnyTask
  placement: Placement
  decision: AutoDecision | undefined
  autoKey: string
  start: number
  done: JobDone
}

/** A job's failure, always an error of the catalogue. */
export type JobError = Error & { code: string }

/** Called once as a job ends: with its error, or with no error and its answer. */
export type JobDone = (error: JobError | undefined, answer?: JobAnswer) => void

/** What a batch item and a WebSocket frame answer: the job's answer, or its error as an HTTP error body says it. */
export type JobOutcome = ({ ok: true } & JobAnswer) | { ok: false, error: ErrorBody }

/**
 * Told of each job that can be cancelled (not an inline one) as it starts, with its abort: the
 * caller aborts it when its client goes away; the runner aborts it at JOB_TIMEOUT_MS. Either way a
 * queued job never starts, a pool job's thread is terminated (CPU) or told to stop (I/O), and an
 * I/O job on the event loop stops waiting.
 */
export type Control = (abort: JobAbort) => void

/** What the transport knows of a job besides the job itself; every field may be left out. */
export interface JobContext {
  /** Told of the job's abort as it starts (see Control). */
  control?: Control
  /** The job's name in a BAD_INPUT message (`jobs[3]`). */
  where?: string
  /**
   * The earliest the job can have arrived (performance.now()), when its transport knows better
   * than the loop's turns do: an HTTP request on a keep-alive connection (src/http/hooks.ts).
   */
  arrivedFrom?: number
}

const NO_CONTEXT: JobContext = Object.freeze({})

const round = (ms: number): number => Math.round(ms * 1000) / 1000

/** CPU_JOBS=auto: crossings to the pool timed at start, one after another. */
const START_PROBES = 5

/**
 * A job's answer marked `ok`, as a batch item carries it: each field written out, since
 * `{ ok: true, ...answer }` is built through V8's runtime (docs/performance.md).
 */
function answered ({ task, kind, result, timing, ranOn }: JobAnswer): { ok: true } & JobAnswer {
  return { ok: true, task, kind, result, timing, ranOn }
}

/** A job's end as a batch item carries it. */
function outcomeOf (error: JobError | undefined, answer: JobAnswer | undefined): JobOutcome {
  return error === undefined ? answered(answer as JobAnswer) : { ok: false, error: toErrorBody(error) }
}

/** Any failure of a job as an error of the catalogue: coded errors as they are, anything else TASK_FAILED. */
function asJobError (err: unknown, task: AnyTask | undefined): JobError {
  const code = (err as { code?: unknown } | null)?.code
  return isErrorCode(code) ? err as JobError : new errors.TASK_FAILED(task?.name, { cause: err })
}

/**
 * Runs jobs where the configuration puts them: one placement for CPU tasks, one for I/O tasks,
 * both chosen here once. The one job path of every transport: checks the job (once), times it,
 * enforces JOB_TIMEOUT_MS, and turns every failure into an error of the catalogue.
 */
export class JobRunner {
  readonly #placements: Readonly<Record<TaskKind, Placement>>
  readonly pool: ThreadPool | undefined
  /** `DISPATCH=bullmq`: the queue CPU jobs go to instead of the pool. */
  readonly #queue: QueueDispatch | undefined
  /** `CPU_JOBS=auto`: the rule that places each CPU job, and the two places it chooses between. */
  readonly #auto: { rule: AutoRule, places: Readonly<Record<AutoVia, Placement>> } | undefined
  readonly #deadlines: Deadlines

  constructor (
    readonly registry: TaskRegistry,
    private readonly config: Pick<Config, 'cpuJobs' | 'ioJobs' | 'dispatch' | 'threads' | 'minThreads' | 'maxQueue' | 'jobTimeoutMs' | 'threadHeapMb' | 'threadNice' | 'faultTasks' | 'logLevel' | 'shedTargetMs' | 'shedIntervalMs' | 'upstreamUrl'> & BackendsConfig,
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
        cpuJobsOnly: config.ioJobs !== 'pool',
        shedding: { targetMs: config.shedTargetMs, intervalMs: config.shedIntervalMs },
        workerData: {
          nice: config.threadNice,
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
    this.#deadlines = new Deadlines(config.jobTimeoutMs)
    const inline = new LocalPlacement('inline', resources)
    this.#auto = config.cpuJobs === 'auto' ? { rule: new AutoRule(), places: Object.freeze({ inline, pool: onPool() }) } : undefined
    this.#queue = config.dispatch === 'bullmq' && config.redisUrl !== undefined
      ? new QueueDispatch({ redisUrl: config.redisUrl, maxQueue: config.maxQueue })
      : undefined
    this.#placements = Object.freeze({
      cpu: config.cpuJobs === 'inline' ? inline : this.#queue ?? onPool(),
      io: config.ioJobs === 'pool' ? onPool() : new LocalPlacement('event-loop', { ...resources, ...backends })
    })
  }

  /**
   * Runs one job (`{ task, input }`, as a client sent it) to its outcome as a batch item carries it;
   * never rejects.
   */
  settle (job: unknown, context: JobContext = NO_CONTEXT): Promise<JobOutcome> {
    return new Promise((resolve) => {
      this.submit(job, context, (error, answer) => resolve(outcomeOf(error, answer)))
    })
  }

  /**
   * The one job path (`POST /jobs` and a WebSocket frame call it; settle() wraps it in a promise
   * for a batch): checks the job, runs it where it belongs, and calls `done` once, with the job's
   * answer or its error. A callback, so that a transport holding thousands of jobs that wait on I/O
   * (a WebSocket) holds no promise of its own for each.
   */
  submit (job: unknown, context: JobContext, done: JobDone): void {
    const start = performance.now()
    let task: AnyTask | undefined
    let placement: Placement | undefined
    let placed: PlacedJob
    let input: unknown
    try {
      const resolved = this.registry.resolve(job, context.where)
      task = resolved.task
      input = resolved.input
      placement = this.#placements[task.kind]
      let decision: AutoDecision | undefined
      let autoKey = ''
      if (task.kind === 'cpu' && this.#auto !== undefined) {
        autoKey = this.#auto.rule.keyOf(task, input)
        decision = this.#auto.rule.decide(autoKey, start, this.loop?.delayMs())
        placement = this.#auto.places[decision.via]
      }
      if (placement.via === 'inline') {
        // An HTTP request was checked, and counted, as it was read; a WebSocket frame is checked here first.
        const refusal = this.loop?.refusal(start, context.arrivedFrom, context.arrivedFrom === undefined)
        if (refusal !== undefined) throw refusal
      }
      placed = { task, placement, decision, autoKey, start, done }
    } catch (err) {
      // A job refused for its input still counts under its task's name, when that is in the catalogue.
      done(this.#failure(err, task ?? this.registry.taskOf(job), placement))
      return
    }
    this.#runPlaced(placed, input, context.control)
  }

  #answer (placed: PlacedJob, outcome: RunOutcome): void {
    let answer: JobAnswer
    try {
      answer = this.#answerOf(placed, outcome)
    } catch (err) {
      this.#fail(placed, err)
      return
    }
    placed.done(undefined, answer)
  }

  #fail ({ task, placement, done }: PlacedJob, err: unknown): void {
    done(this.#failure(err, task, placement))
  }

  #answerOf ({ task, placement, decision, autoKey, start }: PlacedJob, outcome: RunOutcome): JobAnswer {
    const end = performance.now()
    const totalMs = round(end - start)
    if (decision !== undefined) this.#auto?.rule.observe(autoKey, decision.via, outcome.runMs, outcome.crossing, end)
    this.observer?.({
      task: task.name, kind: task.kind, via: placement.via, outcome: 'ok', queuedMs: outcome.queuedMs, runMs: outcome.runMs, totalMs, autoReason: decision?.reason
    })
    return {
      task: task.name,
      kind: task.kind,
      result: outcome.result,
      timing: { queuedMs: round(outcome.queuedMs), runMs: round(outcome.runMs), totalMs },
      ranOn: outcome.host === undefined
        ? { pid: process.pid, threadId: outcome.threadId, via: placement.via }
        : { host: outcome.host, pid: outcome.pid ?? process.pid, threadId: outcome.threadId, via: placement.via }
    }
  }

  /** Any failure as the catalogue error the caller gets, told to the observer. */
  #failure (err: unknown, task: AnyTask | undefined, placement: Placement | undefined): JobError {
    const failure = asJobError(err, task)
    this.observer?.({ task: task?.name ?? '(unknown)', kind: task?.kind ?? 'none', via: placement?.via ?? 'none', outcome: failure.code })
    return failure
  }

  /**
   * The placement's run to the job's answer, bounded by JOB_TIMEOUT_MS: past it the job is answered
   * TIMEOUT at once, even if its task ignores the signal, and the abort frees what the job holds. A
   * caller that aborts the job (its client went away) is not waiting for the answer, so nothing
   * listens for that here: the job stops where it is, and settles when it does.
   *
   * Callbacks, not an async function, and no timer of its own: a job waiting on I/O holds what it
   * holds for as long as it waits, and thousands of them wait at once (see src/deadlines.ts).
   */
  #runPlaced (placed: PlacedJob, input: unknown, control: Control | undefined): void {
    const { placement, task } = placed
    const abort = placement.newAbort()
    // An inline job holds the event loop from start to end: no timer could fire and no abort could
    // land while it runs, so it has no deadline and no control (they would only cost every trivial job).
    if (placement.via === 'inline') {
      placement.run(task, input, abort).then(
        (outcome) => {
          this.loop?.ranInline(outcome.runMs)
          this.#answer(placed, outcome)
        },
        (err: unknown) => this.#fail(placed, err)
      )
      return
    }
    control?.(abort)
    if (abort.aborted) {
      this.#fail(placed, abort.reason)
      return
    }
    const deadlines = this.#deadlines
    const deadline = deadlines.add(() => {
      const timeout = new errors.TIMEOUT(deadlines.timeoutMs)
      abort.abort(timeout)
      this.#fail(placed, timeout)
    })
    // Off the line first: a job that ends after its deadline was answered TIMEOUT then.
    placement.run(task, input, abort).then((outcome) => {
      if (deadlines.remove(deadline)) this.#answer(placed, outcome)
    }, (err: unknown) => {
      if (deadlines.remove(deadline)) this.#fail(placed, abort.aborted ? abort.reason : err)
    })
  }

  /** `CPU_JOBS=auto`'s rule, for /tasks and /metrics to show what it holds. */
  get auto (): AutoRule | undefined {
    return this.#auto?.rule
  }

  /** Connects what the placements need before the first job (the queue's Redis, `DISPATCH=bullmq`). */
  async start (): Promise<void> {
    await this.#queue?.start()
    // CPU_JOBS=auto: the pool's round trip, known before the first job (the first probe may wait
    // for its thread to start; the estimate is the lowest).
    if (this.#auto !== undefined && this.pool !== undefined) {
      for (let i = 0; i < START_PROBES; i++) this.#auto.rule.crossed(await this.pool.probe())
    }
  }

  async close (): Promise<void> {
    this.#deadlines.close()
    await this.#queue?.close()
    await this.pool?.close()
  }
}
