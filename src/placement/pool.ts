import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { MessageChannel } from 'node:worker_threads'
import { Piscina } from 'piscina'
import { QueueDelayRule, RetryStorm, WaitCalibration, type DelayRuleOptions } from '../admission.js'
import { codedError, errors } from '../errors.js'
import { poolWorkerFile } from '../paths.js'
import type { AnyTask } from '../tasks/types.js'
import { CONTROL_ABORT, PROBE_TASK, type PoolReply, type PoolRequest, type PoolWorkerData } from './messages.js'
import type { Crossing, JobAbort, Placement, RunOutcome } from './types.js'
import { WaitingLine } from './waiting-line.js'

function threadEnv (): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _preloads, ...env } = process.env
  return env
}

const crossingOf = (reply: PoolReply, handedAt: number): Crossing =>
  ({ handOffMs: Math.max(0, reply.startedAt - handedAt), threadIdleMs: reply.idleMs })

/**
 * A pool job's abort: what Piscina listens to (it takes an emitter of 'abort' as well as an
 * AbortSignal), at a fraction of an AbortSignal's cost to make.
 *
 * The job counts as aborted at once (`aborted`, `reason`: a job still waiting for a thread never
 * starts), but a cancellation of a CPU job already handed to a thread reaches Piscina, which
 * terminates that thread, only after a grace the pool sets (ThreadPool says why); a timeout
 * reaches it at once.
 */
export class PoolAbort extends EventEmitter implements JobAbort {
  aborted = false
  reason: unknown = undefined
  #graceMs = 0
  #grace: NodeJS.Timeout | undefined

  get signal (): this {
    return this
  }

  abort (reason: unknown = new Error('aborted')): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    if (this.#graceMs > 0 && (reason as { code?: unknown }).code === 'CANCELLED') {
      this.#grace = setTimeout(() => this.emit('abort'), this.#graceMs)
      return
    }
    this.emit('abort')
  }

  /** From now until settled(), a cancellation waits `ms` before it is heard. */
  graceFor (ms: number): void {
    this.#graceMs = ms
  }

  /** The job has ended: nothing is left to stop. */
  settled (): void {
    this.#graceMs = 0
    if (this.#grace !== undefined) clearTimeout(this.#grace)
  }
}

/** How many jobs the moving average of a job's run time reaches back over, about. */
const RUN_AVERAGE_OVER = 16
/** How many times the average a single run counts for at most. */
const RUN_OUTLIER = 4

export interface ThreadPoolOptions {
  minThreads: number
  maxThreads: number
  /** Jobs allowed to wait for a thread; one more is refused at once. */
  maxQueue: number
  /** V8 old-generation size of each thread, in MiB: past it the thread dies and its job fails, not the process. */
  heapMb: number
  /** What each thread is given when it starts. */
  workerData: PoolWorkerData
  /** Admission by the queue's delay: the target for a job's wait for a thread, and the interval. */
  shedding: DelayRuleOptions
}

/**
 * One Piscina pool per process, shared by every placement that uses it. Admission is decided here:
 * by the queue's delay (src/admission.ts; #forecastMs says how it is read), and by MAX_QUEUE, the
 * memory bound: jobs waiting for a thread, exactly. Piscina is handed one job per thread at a
 * time; the others wait in this pool's own line (waiting-line.ts says why).
 */
export class ThreadPool {
  readonly #piscina: Piscina<PoolRequest, PoolReply>
  readonly #line = new WaitingLine()
  readonly #delayRule: QueueDelayRule
  readonly #storm: RetryStorm
  readonly #calibration = new WaitCalibration()
  readonly #maxThreads: number
  readonly #maxQueue: number
  /** Jobs handed to Piscina and not yet settled: at most one per thread. */
  #running = 0
  /**
   * A job's run on its thread, in ms, as the thread timed it: a moving average over the jobs so
   * far. The crossings to and from the thread are left out: how long they take depends on how
   * busy the event loop is, not on the jobs ahead, and the oldest job's age accounts for them.
   */
  #runMs = 0
  /** What a thread costs to start here, in ms, once measured (0 until then): see #cancelGraceMs. */
  #threadStartMs = 0

  constructor (options: ThreadPoolOptions) {
    this.#piscina = new Piscina({
      filename: poolWorkerFile,
      minThreads: options.minThreads,
      maxThreads: options.maxThreads,
      // Threads above minThreads were started for a burst; keep them a while rather than churn.
      idleTimeout: 30_000,
      concurrentTasksPerWorker: 1,
      // A profiler's preloads (clinic's -r in NODE_OPTIONS) are for the process: run again in every
      // thread, they would write over each other's samples. Threads get neither those nor execArgv.
      execArgv: [],
      env: threadEnv(),
      resourceLimits: { maxOldGenerationSizeMb: options.heapMb },
      workerData: options.workerData
    })
    this.#delayRule = new QueueDelayRule(options.shedding, performance.now())
    this.#storm = new RetryStorm(options.shedding.intervalMs, performance.now())
    this.#maxThreads = options.maxThreads
    this.#maxQueue = options.maxQueue
    // The first thread starts now: how long until it answers is what a thread costs to start.
    const constructedAt = performance.now()
    this.probe().then(() => { this.#threadStartMs = performance.now() - constructedAt }, () => {})
  }

  /**
   * How long a cancelled CPU job may go on before its thread is terminated, in ms. Synchronous code
   * can only be stopped by terminating its thread, and a new thread costs a V8 isolate and its
   * modules to start (about 120 ms of CPU on the reference machine, where a fib(25) job takes under
   * 1 ms): terminating a short job whose client left costs far more than letting it end. Nobody
   * knows how much longer a job will run, so the pool waits as long as a thread takes to start,
   * then terminates it: a job that ends within that keeps its thread, and one that does not has
   * cost at most twice what terminating it at once would have (the ski-rental rule). Its client is
   * gone either way, and its result is dropped. A job past JOB_TIMEOUT_MS is terminated at once.
   */
  get cancelGraceMs (): number {
    return this.#threadStartMs
  }

  get threads (): number {
    return this.#piscina.threads.length
  }

  get maxThreads (): number {
    return this.#maxThreads
  }

  /** Share of the threads' time spent running jobs, since the pool started. */
  get utilization (): number {
    return this.#piscina.utilization
  }

  /** Jobs waiting for a thread right now. */
  get queued (): number {
    return this.#line.size
  }

  async run (task: AnyTask, input: unknown, signal: PoolAbort): Promise<RunOutcome> {
    const now = performance.now()
    const threadFree = this.#running < this.#maxThreads && this.#line.size === 0
    /** The wait forecast this job was admitted on, the factor applied (0: it found a thread free). */
    let forecastMs = 0
    if (threadFree) {
      this.#running++
      this.#delayRule.observe(0, now) // nobody waits: no queueing delay
    } else {
      if (this.#line.size >= this.#maxQueue) return await this.#refuse('every pool thread busy and MAX_QUEUE jobs waiting', now)
      forecastMs = this.#forecastMs()
      const delayMs = Math.max(this.#line.oldestWaitMs(now), forecastMs)
      if (!this.#delayRule.admits(delayMs, now)) {
        return await this.#refuse(`jobs have waited ${Math.round(delayMs)} ms for a pool thread, over the ${this.#delayRule.boundMs()} ms allowed`, now)
      }
      await this.#line.wait(now, signal) // #settled() counts this job as running when it lets it through
    }
    // A job waits for a thread in this pool's line, then (a thread still starting) in Piscina's.
    const arrivedAt = performance.timeOrigin + now
    let reply: PoolReply
    try {
      if (task.kind === 'cpu') {
        // Aborted, Piscina drops the job from the queue, or terminates its thread and starts
        // another: at once on a timeout, after a grace when its client left (cancelGraceMs).
        signal.graceFor(this.#threadStartMs)
        reply = await this.#piscina.run({ task: task.name, input }, { signal })
      } else {
        reply = await this.#runCooperatively(task, input, signal)
      }
    } catch (err) {
      // What happened, as it happened: the job runner turns it into an error of the catalogue.
      throw signal.aborted ? signal.reason : err
    } finally {
      signal.settled()
      this.#settled()
    }
    this.#learnRun(reply.runMs)
    const queuedMs = Math.max(0, reply.startedAt - arrivedAt)
    this.#calibration.waited(queuedMs, forecastMs, this.#delayRule.targetMs)
    // A job that ended within its grace: its client is gone, and so is its result.
    if (signal.aborted) throw signal.reason
    if (!reply.ok) throw codedError(reply.code, reply.message)
    return {
      result: reply.result,
      queuedMs,
      runMs: reply.runMs,
      threadId: reply.threadId,
      // A job that found a thread free was handed to Piscina as it arrived; one that waited is
      // handed to a thread just as it finishes: no crossing of its own.
      crossing: threadFree ? crossingOf(reply, arrivedAt) : undefined
    }
  }

  /**
   * A job's run into the average, each at most RUN_OUTLIER times the average: a 5 us job whose
   * thread the machine preempted for 30 ms is not a sign that jobs got costly, and counted in
   * full it made the line refuse jobs that would have waited a millisecond. A real change of cost
   * still shows within a few dozen jobs (the average can grow by about a fifth per job).
   */
  #learnRun (runMs: number): void {
    if (this.#runMs === 0) {
      this.#runMs = runMs
      return
    }
    this.#runMs += (Math.min(runMs, RUN_OUTLIER * this.#runMs) - this.#runMs) / RUN_AVERAGE_OVER
  }

  /**
   * How long a job arriving now would wait: the runs of the jobs ahead of it, spread over the
   * threads, read through what the jobs admitted on it then waited (WaitCalibration). Admission
   * judges a job by the longer of this and how long the oldest waiting job has waited. The second
   * alone lags: in a burst the line fills faster than the threads empty it, while its oldest job
   * is still young, and those admitted last then wait far longer than the target (at twice the
   * sustainable rate of 5 ms jobs, a p99 wait of 177 ms against a target of 50 ms;
   * docs/performance.md has the run).
   */
  #forecastMs (): number {
    return this.#line.size * this.#runMs / this.#maxThreads * this.#calibration.factor
  }

  /** How many times itself the line's wait forecast counts for (WaitCalibration): 1 while jobs start on time. */
  get waitCalibration (): number {
    return this.#calibration.factor
  }

  /**
   * The way out of the crossing to a thread, once, timed with a request that runs nothing, in ms.
   * For the start-up, before any job: it does not wait in the line.
   */
  async probe (): Promise<number> {
    const handedAt = performance.timeOrigin + performance.now()
    return crossingOf(await this.#piscina.run({ task: PROBE_TASK, input: null }), handedAt).handOffMs
  }

  /**
   * An I/O job: aborting it tells its thread over the job's port, and the task stops waiting and
   * frees the thread; told before the thread has begun it (a thread Piscina is still starting), the
   * job stops as it begins. It is never aborted through Piscina, which would terminate the thread:
   * a client that leaves or a timeout would then cost a thread start (a V8 isolate and its modules,
   * 100 ms and more of CPU) for a job of microseconds, and a pool growing under load, as `threads`
   * does, would lose its new threads as fast as it starts them.
   */
  async #runCooperatively (task: AnyTask, input: unknown, signal: PoolAbort): Promise<PoolReply> {
    const { port1, port2 } = new MessageChannel()
    const onAbort = (): void => { port1.postMessage(CONTROL_ABORT) }
    signal.once('abort', onAbort)
    try {
      const request: PoolRequest = { task: task.name, input, control: port2 }
      return await this.#piscina.run(request, { transferList: [port2] })
    } finally {
      signal.off('abort', onAbort)
      port1.close()
    }
  }

  /** OVERLOADED, answered at once, or an interval later while clients retry in a storm (RetryStorm says why). */
  async #refuse (message: string, now: number): Promise<never> {
    const holdMs = this.#storm.refused(now, this.#delayRule.standing)
    if (holdMs > 0) await sleep(holdMs)
    throw new errors.OVERLOADED(message)
  }

  /** A job handed to Piscina has settled: its thread takes the oldest waiting job, if any. */
  #settled (): void {
    const now = performance.now()
    this.#storm.ran(now)
    if (!this.#line.next()) {
      this.#running--
      this.#delayRule.observe(0, now) // the line has run dry
    }
  }

  async close (): Promise<void> {
    await this.#piscina.close()
  }
}

/** Runs jobs on a pool thread: a CPU job there leaves the event loop free; an I/O job holds its thread until done. */
export class PoolPlacement implements Placement<PoolAbort> {
  readonly via = 'pool'
  constructor (private readonly pool: ThreadPool) {}

  newAbort (): PoolAbort {
    return new PoolAbort()
  }

  run (task: AnyTask, input: unknown, abort: PoolAbort): Promise<RunOutcome> {
    return this.pool.run(task, input, abort)
  }

  // The pool is shared; whoever created it closes it.
  async close (): Promise<void> {}
}
