import { performance } from 'node:perf_hooks'
import { threadId } from 'node:worker_threads'
import { RunContext, type TaskResources } from '../tasks/context.js'
import type { AnyTask } from '../tasks/types.js'
import type { Placement, RunOutcome } from './types.js'

/**
 * Runs the task on this process's event loop. For a CPU task (`inline`) that blocks the loop for
 * the task's whole run and nothing can interrupt it: the input schemas' limits are what bound it.
 * For an I/O task (`event-loop`) the loop only waits, and the job's abort cancels the wait.
 */
export class LocalPlacement implements Placement<RunContext> {
  /** What every inline job gets: nothing can abort a job that holds the loop while it runs. */
  readonly #unaborted: RunContext | undefined

  constructor (
    readonly via: 'inline' | 'event-loop',
    /** What every job's context holds besides its abort: the same for every job. */
    private readonly resources: TaskResources
  ) {
    this.#unaborted = via === 'inline' ? new RunContext(resources) : undefined
  }

  /** The job's abort is its task's context too: one small object per I/O job, one shared by all inline jobs. */
  newAbort (): RunContext {
    return this.#unaborted ?? new RunContext(this.resources)
  }

  run (task: AnyTask, input: unknown, context: RunContext): Promise<RunOutcome> {
    const start = performance.now()
    let returned: unknown
    try {
      returned = task.run(input, context)
    } catch (err) {
      return Promise.reject(err)
    }
    // A CPU task returns its result: its run ends here, not when a continuation runs after an
    // await, which on a busy loop comes after every other callback queued meanwhile.
    if (!(returned instanceof Promise)) {
      return Promise.resolve({ result: returned, queuedMs: 0, runMs: performance.now() - start, threadId })
    }
    // Not an async function: an I/O job's frames are held for as long as it waits.
    return returned.then((result: unknown) => ({ result, queuedMs: 0, runMs: performance.now() - start, threadId }))
  }

  async close (): Promise<void> {}
}
