import type { AnyTask } from '../tasks/types.js'

/** Where a job really ran, as the answer's `ranOn.via` says. */
export type Via = 'inline' | 'event-loop' | 'pool'

export interface RunOutcome {
  result: unknown
  queuedMs: number
  runMs: number
  threadId: number
}

/**
 * One way of running a job. Each configuration picks one for CPU tasks and one for I/O tasks at
 * start-up; nothing downstream asks which model is in force.
 */
export interface Placement {
  readonly via: Via
  /** Resolves with the task's result or rejects with a coded error; an aborted signal cancels the job where the placement can. */
  run (task: AnyTask, input: unknown, signal: AbortSignal): Promise<RunOutcome>
  close (): Promise<void>
}
