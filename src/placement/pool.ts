import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { MessageChannel } from 'node:worker_threads'
import { Piscina } from 'piscina'
import { CALIBRATION_QUIET_INTERVALS, QueueDelayRule, RetryStorm, WaitCalibration, type DelayRuleOptions } from '../admission.js'
import { codedError, errors } from '../errors.js'
import { poolWorkerFile } from '../paths.js'
import type { AnyTask } from '../tasks/types.js'
import { CONTROL_ABORT, PROBE_TASK, type PoolAnswer, type PoolReply, type PoolRequest, type PoolWorkerData } from './messages.js'
import { Recalls } from './recalls.js'
import { DONE, HANDED, Tickets } from './tickets.js'
import type { Crossing, JobAbort, Placement, RunOutcome } from './types.js'
import { WaitingLine } from './waiting-line.js'

function threadEnv (): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _preloads, ...env } = process.env
  return env
}

const crossingOf = (reply: PoolAnswer, handedAt: number): Crossing =>
  ({ handOffMs: Math.max(0, reply.startedAt - handedAt), threadIdleMs: reply.idleMs })

/**
 * A pool job's abort: an emitter of 'abort', at a fraction of an AbortSignal's cost to make. The
 * job counts as aborted at once (`aborted`, `reason`): a job still waiting for a thread never
 * starts. What happens to one already handed to a thread is the pool's to decide (ThreadPool.#stop).
 */
export class PoolAbort extends EventEmitter implements JobAbort {
  aborted = false
  reason: unknown = undefined

  abort (reason: unknown = new Error('aborted')): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    this.emit('abort')
  }
}

/** How many jobs the moving average of a job's run time reaches back over, about. */
const RUN_AVERAGE_OVER = 16
/** How many times the average a single run counts for at most. */
const RUN_OUTLIER = 4
/**
 * Jobs a thread of a pool of CPU jobs is handed at most at once: the one it runs and the next.
 * Handing the next job to the busy thread saves the crossing (tens of microseconds: the thread
 * woken, then the event loop). In a pool of one thread that job would wait for that thread either
 * way. In a pool of several, it waits for that thread even if another frees first: behind a job
 * that runs away until JOB_TIMEOUT_MS it would time out beside an idle thread (the thread-fault
 * test caught it), so there it is recalled if it has not begun soon (recalls.ts).
 */
const PIPELINE_DEPTH = 2
/**
 * A job handed to a busy thread of a pool of several is recalled when it has not begun after this
 * many ms, or RUN_OUTLIER times the average run if longer (a job may wait a whole run normally).
 */
const RECALL_AFTER_MS = 5
/** How many times a CPU job is handed to a thread at most, when threads die under it without its fault. */
const MAX_HANDED = 3

/**
 * A CPU pool's threads above minThreads were started for a burst; each is kept this long idle
 * rather than churned. A pool that runs I/O jobs (the thread-per-request model, `threads`) keeps
 * every thread it starts, as a ThreadPoolExecutor does: its threads hold jobs that wait, not
 * cores, and starting them again each time a load came back after a lull cost seconds of CPU and
 * most of the throughput meanwhile (bench/README.md, "Drift", has the figures).
 */
const IDLE_THREAD_MS = 30_000

export interface ThreadPoolOptions {
  minThreads: number
  maxThreads: number
  /** Jobs allowed to wait for a thread; one more is refused at once. */
  maxQueue: number
  /** V8 old-generation size of each thread, in MiB: past it the thread dies and its job fails, not the process. */
  heapMb: number
  /** What each thread is given when it starts (the pool adds its tickets). */
  workerData: Omit<PoolWorkerData, 'tickets'>
  /**
   * The pool runs CPU jobs only (not I/O jobs, as in `threads`, where a thread per job is the
   * model shown). Such a pool hands a thread its next job while it runs one (PIPELINE_DEPTH).
   */
  cpuJobsOnly: boolean
  /** Admission by the queue's delay: the target for a job's wait for a thread, and the interval. */
  shedding: DelayRuleOptions
  /** How long a CPU pool keeps a thread above minThreads idle (IDLE_THREAD_MS); a pool of I/O jobs keeps them all. */
  idleThreadMs?: number
}

/**
 * One Piscina pool per process, shared by every placement that uses it. Admission is decided here:
 * by the queue's delay (src/admission.ts; #forecastMs says how it is read), and by MAX_QUEUE, the
 * memory bound: jobs waiting for a thread, exactly. Piscina is handed one job per thread at a
 * time, or two when the pool pipelines; the others wait in this pool's own line (waiting-line.ts
 * says why). A CPU job handed to a thread has a ticket (tickets.ts): how it is stopped.
 */
export class ThreadPool {
  readonly #piscina: Piscina<PoolRequest, PoolReply>
  readonly #line = new WaitingLine()
  readonly #delayRule: QueueDelayRule
  readonly #storm: RetryStorm
  readonly #calibration: WaitCalibration
  readonly #maxThreads: number
  readonly #maxQueue: number
  /** Jobs Piscina may hold at once: one per thread, or PIPELINE_DEPTH for a pipelining pool's thread. */
  readonly #handLimit: number
  readonly #tickets: Tickets
  /** A pipelining pool of several threads: its jobs handed to busy threads, watched until they begin. */
  readonly #recalls: Recalls | undefined
  /** Threads this pool terminated, until Piscina has failed their jobs: a job one took with it is handed again. */
  readonly #terminated = new Set<number>()
  /** Jobs handed to Piscina and not yet settled: at most #handLimit. */
  #running = 0
  /**
   * A job's run on its thread, in ms, as the thread timed it: a moving average over the jobs so
   * far. The crossings to and from the thread are left out: how long they take depends on how
   * busy the event loop is, not on the jobs ahead, and the oldest job's age accounts for them.
   */
  #runMs = 0
  /** What a thread costs to start here, in ms, once measured (0 until then): see #cancelGraceMs. */
  #threadStartMs = 0
  /** When the pool was made, and the threads' time spent running jobs since, in ms (utilization). */
  readonly #startedAt = performance.now()
  #busyMs = 0

  constructor (options: ThreadPoolOptions) {
    const perThread = options.cpuJobsOnly ? PIPELINE_DEPTH : 1
    this.#handLimit = options.maxThreads * perThread
    const recalling = perThread > 1 && options.maxThreads > 1
    // A recalled job keeps its cell until its thread has skipped it: as many again for those.
    const tickets = new Tickets(this.#handLimit * (recalling ? 2 : 1))
    this.#tickets = tickets
    this.#recalls = recalling
      ? new Recalls(tickets, () => Math.max(RECALL_AFTER_MS, RUN_OUTLIER * this.#runMs), this.#handLimit)
      : undefined
    this.#piscina = new Piscina({
      filename: poolWorkerFile,
      minThreads: options.minThreads,
      maxThreads: options.maxThreads,
      idleTimeout: options.cpuJobsOnly ? (options.idleThreadMs ?? IDLE_THREAD_MS) : Infinity,
      concurrentTasksPerWorker: perThread,
      // A profiler's preloads (clinic's -r in NODE_OPTIONS) are for the process: run again in every
      // thread, they would write over each other's samples. Threads get neither those nor execArgv.
      execArgv: [],
      env: threadEnv(),
      resourceLimits: { maxOldGenerationSizeMb: options.heapMb },
      // Piscina's histograms of each task's wait and run: nothing here reads them, each job would
      // pay for two records, and the utilization Piscina 5 derives from them is a thousand times
      // too small (it divides the mean run by 1000 twice). The threads time their own runs.
      recordTiming: false,
      workerData: { ...options.workerData, tickets: tickets.cells }
    })
    this.#delayRule = new QueueDelayRule(options.shedding, performance.now())
    // What the threads can finish in an interval at the jobs' current run time.
    const { intervalMs } = options.shedding
    const finishable = (): number => this.#runMs > 0 ? options.maxThreads * intervalMs / this.#runMs : 0
    this.#storm = new RetryStorm(intervalMs, performance.now(), finishable)
    this.#calibration = new WaitCalibration(CALIBRATION_QUIET_INTERVALS * intervalMs, performance.now())
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
    const capacityMs = (performance.now() - this.#startedAt) * this.#maxThreads
    return capacityMs > 0 ? Math.min(1, this.#busyMs / capacityMs) : 0
  }

  /** Jobs waiting for a thread right now: in the line, and handed to a thread busy with another (pipelined). */
  get queued (): number {
    return this.#line.size + Math.max(0, this.#running - this.#maxThreads)
  }

  async run (task: AnyTask, input: unknown, signal: PoolAbort): Promise<RunOutcome> {
    const now = performance.now()
    const waiting = this.queued
    // A thread free, or (the pool pipelines) one that runs a job and may be handed its next.
    const threadFree = this.#line.size === 0 &&
      (this.#running < this.#maxThreads || (this.#running < this.#handLimit && waiting < this.#maxQueue))
    /** The wait forecast this job was admitted on, the factor applied (0: it found a thread free). */
    let forecastMs = 0
    if (threadFree) {
      this.#running++
      this.#delayRule.observe(0, now) // nobody waits: no queueing delay
    } else {
      if (waiting >= this.#maxQueue) return await this.#refuse('every pool thread busy and MAX_QUEUE jobs waiting', now)
      forecastMs = this.#forecastMs(now)
      const delayMs = Math.max(this.#line.oldestWaitMs(now), forecastMs)
      if (!this.#delayRule.admits(delayMs, now)) {
        return await this.#refuse(`jobs have waited ${Math.round(delayMs)} ms for a pool thread, over the ${this.#delayRule.boundMs()} ms allowed`, now)
      }
      await this.#line.wait(now, signal) // #settled() counts this job as running when it lets it through
    }
    // Handed to a thread that may be running another job (the pool pipelines): its crossing is not timed.
    const aThreadFree = threadFree && this.#running <= this.#maxThreads
    // A job waits for a thread in this pool's line, then (a thread still starting) in Piscina's.
    const arrivedAt = performance.timeOrigin + now
    let reply: PoolAnswer
    try {
      reply = task.kind === 'cpu' ? await this.#runCpu(task, input, signal) : await this.#runCooperatively(task, input, signal)
    } catch (err) {
      // What happened, as it happened: the job runner turns it into an error of the catalogue.
      throw signal.aborted ? signal.reason : err
    } finally {
      this.#settled()
    }
    this.#learnRun(reply.runMs)
    this.#busyMs += reply.runMs
    const queuedMs = Math.max(0, reply.startedAt - arrivedAt)
    // Learned as of the job's start (it arrived at `now`): no clock read of its own.
    this.#calibration.waited(queuedMs, forecastMs, this.#delayRule.targetMs, now + queuedMs)
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
      crossing: aThreadFree ? crossingOf(reply, arrivedAt) : undefined
    }
  }

  /**
   * A CPU job on a thread, with a ticket (tickets.ts) that says whether it may still begin.
   * Aborted (#stop), a job that has not begun never will; one that runs is stopped by terminating
   * its thread, the one way to stop synchronous code. A job its thread took with it without being
   * at fault is handed again: one that had not begun, one that had ended but whose answer was not
   * read yet, or one a thread terminated for another job began just before it died (CPU tasks are
   * functions of their input: a second run costs time only). So is one recalled from a busy
   * thread (recalls.ts).
   */
  async #runCpu (task: AnyTask, input: unknown, signal: PoolAbort): Promise<PoolAnswer> {
    if (signal.aborted) throw signal.reason
    const tickets = this.#tickets
    const recalls = this.#recalls
    let slot = tickets.take()
    let grace: NodeJS.Timeout | undefined
    const onAbort = (): void => { grace = this.#stop(slot, signal.reason) }
    signal.once('abort', onAbort)
    try {
      for (let handings = 1, recalled = false; ;) {
        let reply: PoolReply | undefined
        try {
          const attempt = this.#piscina.run({ task: task.name, input, slot })
          // Handed to a busy thread (every thread has a job), or again after a recall: watched.
          const watched = recalls !== undefined && (recalled || this.#running > this.#maxThreads)
          reply = watched ? await recalls.watch(slot, attempt) : await attempt
        } catch (err) {
          if (signal.aborted) throw signal.reason
          const state = tickets.state(slot)
          // Not at fault: a job that had not begun; one that ended, but whose answer was lost with its
          // thread, which the job after it killed before the event loop read that answer; one a
          // thread terminated for another job took with it. Threads that die as they start would
          // take a job again and again: Piscina's error then.
          const innocent = state === HANDED || state === DONE || this.#terminated.has(state)
          if (!innocent || handings++ === MAX_HANDED) throw err
          tickets.hand(slot)
          continue
        }
        if (reply === undefined) {
          // Recalled: its old cell is given back when its thread skips it; not a thread lost.
          slot = tickets.take()
          recalled = true
          continue
        }
        if (reply.skipped === true) throw signal.reason // cancelled before it began
        return reply
      }
    } finally {
      signal.off('abort', onAbort)
      if (grace !== undefined) clearTimeout(grace)
      tickets.give(slot)
    }
  }

  /**
   * An aborted CPU job: if it has not begun, it never will. If it runs, its thread is terminated:
   * at once on a timeout, after a grace when its client left (cancelGraceMs says why); the timer,
   * if any, is returned to be cleared if the job ends first.
   */
  #stop (slot: number, reason: unknown): NodeJS.Timeout | undefined {
    if (this.#tickets.cancel(slot)) return undefined
    if ((reason as { code?: unknown }).code === 'CANCELLED' && this.#threadStartMs > 0) {
      return setTimeout(() => this.#terminate(slot), this.#threadStartMs)
    }
    this.#terminate(slot)
    return undefined
  }

  /** Terminates the thread running the job at `slot`, if it still runs it; Piscina starts another in its place. */
  #terminate (slot: number): void {
    const threadId = this.#tickets.state(slot)
    if (threadId <= 0) return // ended meanwhile
    const thread = this.#piscina.threads.find((t) => t.threadId === threadId)
    if (thread === undefined) return
    this.#terminated.add(threadId)
    // Piscina fails the thread's jobs as it exits; those are handed again before this runs.
    thread.once('exit', () => setImmediate(() => this.#terminated.delete(threadId)))
    void thread.terminate()
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
  #forecastMs (now: number): number {
    return this.queued * this.#runMs / this.#maxThreads * this.#calibration.factorAt(now)
  }

  /** How many times itself the line's wait forecast counts for (WaitCalibration): 1 while jobs start on time. */
  get waitCalibration (): number {
    return this.#calibration.factorAt(performance.now())
  }

  /**
   * The way out of the crossing to a thread, once, timed with a request that runs nothing, in ms.
   * For the start-up, before any job: it does not wait in the line.
   */
  async probe (): Promise<number> {
    const handedAt = performance.timeOrigin + performance.now()
    return crossingOf(await this.#piscina.run({ task: PROBE_TASK, input: null }) as PoolAnswer, handedAt).handOffMs
  }

  /**
   * An I/O job: aborting it tells its thread over the job's port, and the task stops waiting and
   * frees the thread; told before the thread has begun it (a thread Piscina is still starting), the
   * job stops as it begins. It is never aborted through Piscina, which would terminate the thread:
   * a client that leaves or a timeout would then cost a thread start (a V8 isolate and its modules,
   * 100 ms and more of CPU) for a job of microseconds, and a pool growing under load, as `threads`
   * does, would lose its new threads as fast as it starts them.
   */
  async #runCooperatively (task: AnyTask, input: unknown, signal: PoolAbort): Promise<PoolAnswer> {
    const { port1, port2 } = new MessageChannel()
    const onAbort = (): void => { port1.postMessage(CONTROL_ABORT) }
    signal.once('abort', onAbort)
    try {
      const request: PoolRequest = { task: task.name, input, control: port2 }
      return await this.#piscina.run(request, { transferList: [port2] }) as PoolAnswer
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
    this.#recalls?.close()
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
