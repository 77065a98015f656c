/** What crosses between a process's event loop and its pool threads: the only messages there are. */
import type { MessagePort } from 'node:worker_threads'
import type { BackendsConfig } from '../backends/connections.js'
import type { LogLevel } from '../config.js'
import type { ErrorCode } from '../errors.js'

export interface PoolRequest {
  task: string
  input: unknown
  /**
   * I/O jobs only: a port on which the event loop says CONTROL_ABORT to cancel the job, whether the
   * thread has begun it yet or not (a message sent first waits on the port until the thread
   * listens). A waiting job can stop waiting; terminating its thread instead would cost a new
   * thread (a V8 isolate) per cancelled job.
   */
  control?: MessagePort
  /** CPU jobs only: the job's cell in the pool's tickets (src/placement/tickets.ts). */
  slot?: number
}

export const CONTROL_ABORT = 'abort'

/**
 * A task name no task can have (theirs are lower-case letters, digits and hyphens): the thread
 * answers it at once, running nothing, so that the event loop can time the crossing to a thread
 * (`CPU_JOBS=auto`).
 */
export const PROBE_TASK = '(probe)'

export interface Ran {
  /** When the thread began the task: performance.timeOrigin + performance.now(), comparable across threads. */
  startedAt: number
  runMs: number
  threadId: number
  /** How long the thread had been without a job when it began this one, in ms (Infinity: its first). */
  idleMs: number
}

/**
 * A task's own coded failure (UPSTREAM_FAILED, ...) comes back as data; anything else it throws,
 * Piscina rejects with.
 */
export type PoolAnswer =
  | (Ran & { ok: true, result: unknown, skipped?: undefined })
  | (Ran & { ok: false, code: ErrorCode, message: string, skipped?: undefined })

/**
 * What a thread answers: the job's answer, or that it skipped a CPU job cancelled before it began
 * (never a probe or an I/O job).
 */
export type PoolReply = PoolAnswer | { ok: false, skipped: true }

/** Given to every pool thread when it starts (Piscina's workerData). */
export interface PoolWorkerData {
  /** The thread's nice value on Linux, which it sets itself as it starts (THREAD_NICE; 0 leaves it). */
  nice: number
  /** Load the `fault` task too (FAULT_TASKS=on), as the process's registry does. */
  faultTasks: boolean
  /** Base URL of the delay service, for the tasks that call it: the same for every job. */
  upstreamUrl: string | undefined
  /**
   * The backends of the `db` and `cache` tasks. A thread is an isolate: it cannot share the
   * process's pg pool or Redis connection, so it opens its own (one pg connection: a thread runs
   * one job at a time), on its first such job.
   */
  backends: BackendsConfig
  logLevel: LogLevel
  /** The cells of the pool's tickets (src/placement/tickets.ts): memory every thread shares with the event loop. */
  tickets: Int32Array
}
