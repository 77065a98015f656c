import type { AnyTask } from '../tasks/types.js'

/** Where a job really ran, as the answer's `ranOn.via` says. */
export type Via = 'inline' | 'event-loop' | 'pool' | 'queue'

export interface RunOutcome {
  result: unknown
  queuedMs: number
  runMs: number
  threadId: number
  /** A pool job that found a thread free: its crossing there (`CPU_JOBS=auto` learns from it). */
  crossing?: Crossing
  /** A job run by another process (a worker host, `DISPATCH=bullmq`): its pid and host name. */
  pid?: number
  host?: string
}

/** The way out of the crossing to a thread, timed on both sides: no event loop backlog in it. */
export interface Crossing {
  /** From handing the job to Piscina until its thread began it. */
  handOffMs: number
  /** How long that thread had been without a job then. */
  threadIdleMs: number
}

/**
 * How a job is aborted (JOB_TIMEOUT_MS, or its client gone): aborted at once, with its reason. Not
 * an AbortController: one costs microseconds to make and about 0.8 KB to hold in Node 20, and a
 * job on a pool thread has no task on this thread to hand a signal to. The event loop's abort is
 * its task's context (tasks/context.ts), whose signal is made only when the task reads it.
 */
export interface JobAbort {
  readonly aborted: boolean
  readonly reason: unknown
  abort (reason?: unknown): void
}

/**
 * One way of running a job. Each configuration picks one for CPU tasks and one for I/O tasks at
 * start-up; nothing downstream asks which model is in force.
 */
export interface Placement<A extends JobAbort = JobAbort> {
  readonly via: Via
  /** A new abort for one job, of the kind this placement listens to. */
  newAbort (): A
  /**
   * Resolves with the task's result or rejects with what happened; an abort cancels the job where the
   * placement can.
   */
  run (task: AnyTask, input: unknown, abort: A): Promise<RunOutcome>
  close (): Promise<void>
}
