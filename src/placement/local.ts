import { performance } from 'node:perf_hooks'
import { threadId } from 'node:worker_threads'
import type { AnyTask, TaskContext } from '../tasks/types.js'
import type { Placement, RunOutcome } from './types.js'

/**
 * Runs the task on this process's event loop. For a CPU task (`inline`) that blocks the loop for
 * the task's whole run and nothing can interrupt it: the input schemas' limits are what bound it.
 * For an I/O task (`event-loop`) the loop only waits, and the job's signal cancels the wait.
 */
export class LocalPlacement implements Placement<AbortController> {
  constructor (
    readonly via: 'inline' | 'event-loop',
    /** What every job's context holds besides its signal: the same for every job. */
    private readonly resources: Omit<TaskContext, 'signal'>
  ) {}

  newAbort (): AbortController {
    return new AbortController()
  }

  run (task: AnyTask, input: unknown, abort: AbortController): Promise<RunOutcome> {
    const start = performance.now()
    const { upstreamUrl, postgres, redis } = this.resources
    let returned: unknown
    try {
      // Each field written out: `{ ...resources, signal }` is built through V8's runtime, per job.
      returned = task.run(input, { signal: abort.signal, upstreamUrl, postgres, redis })
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
