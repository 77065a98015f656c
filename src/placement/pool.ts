import { performance } from 'node:perf_hooks'
import { Piscina } from 'piscina'
import { codedError, errors, RETRY_AFTER_S } from '../errors.js'
import { poolWorkerFile } from '../paths.js'
import type { AnyTask } from '../tasks/types.js'
import type { PoolReply, PoolRequest } from './messages.js'
import type { Placement, RunOutcome } from './types.js'

export interface ThreadPoolOptions {
  minThreads: number
  maxThreads: number
  /** Jobs allowed to wait for a thread; one more is refused at once. */
  maxQueue: number
  upstreamUrl: string | undefined
}

/**
 * One Piscina pool per process, shared by every placement that uses it. Admission is counted here
 * rather than left to Piscina's maxQueue, whose limit also counts threads still starting: the
 * contract's MAX_QUEUE is "jobs waiting for a thread", exactly.
 */
export class ThreadPool {
  readonly #piscina: Piscina<PoolRequest, PoolReply>
  readonly #capacity: number
  readonly #upstreamUrl: string | undefined
  #inFlight = 0

  constructor (options: ThreadPoolOptions) {
    this.#piscina = new Piscina({
      filename: poolWorkerFile,
      minThreads: options.minThreads,
      maxThreads: options.maxThreads,
      // Threads above minThreads were started for a burst; keep them a while rather than churn.
      idleTimeout: 30_000,
      concurrentTasksPerWorker: 1
    })
    this.#capacity = options.maxThreads + options.maxQueue
    this.#upstreamUrl = options.upstreamUrl
  }

  get threads (): number {
    return this.#piscina.threads.length
  }

  get maxThreads (): number {
    return this.#piscina.options.maxThreads
  }

  /** Share of the threads' time spent running jobs, since the pool started. */
  get utilization (): number {
    return this.#piscina.utilization
  }

  /** Jobs waiting for a thread right now. */
  get queued (): number {
    return this.#piscina.queueSize
  }

  async run (task: AnyTask, input: unknown, signal: AbortSignal): Promise<RunOutcome> {
    if (this.#inFlight >= this.#capacity) throw new errors.OVERLOADED(RETRY_AFTER_S)
    this.#inFlight++
    const submittedAt = performance.timeOrigin + performance.now()
    let reply: PoolReply
    try {
      reply = await this.#piscina.run({ task: task.name, input, upstreamUrl: this.#upstreamUrl }, { signal })
    } catch (err) {
      // Aborted: Piscina dropped the job from the queue or terminated its thread (and starts another).
      if (signal.aborted) throw signal.reason
      throw new errors.TASK_FAILED(task.name, { cause: err })
    } finally {
      this.#inFlight--
    }
    if (!reply.ok) throw codedError(reply.code, reply.message)
    return {
      result: reply.result,
      queuedMs: Math.max(0, reply.startedAt - submittedAt),
      runMs: reply.runMs,
      threadId: reply.threadId
    }
  }

  async close (): Promise<void> {
    await this.#piscina.close()
  }
}

/** Runs jobs on a pool thread: a CPU job there leaves the event loop free; an I/O job holds its thread until done. */
export class PoolPlacement implements Placement {
  readonly via = 'pool'
  constructor (private readonly pool: ThreadPool) {}

  run (task: AnyTask, input: unknown, signal: AbortSignal): Promise<RunOutcome> {
    return this.pool.run(task, input, signal)
  }

  // The pool is shared; whoever created it closes it.
  async close (): Promise<void> {}
}
