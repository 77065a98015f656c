import { performance } from 'node:perf_hooks'
import { threadId } from 'node:worker_threads'
import type { UserService } from '../backends/users.js'
import type { AnyTask } from '../tasks/types.js'
import type { Placement, RunOutcome } from './types.js'

/**
 * Runs the task on this process's event loop. For a CPU task (`inline`) that blocks the loop for
 * the task's whole run and nothing can interrupt it: the input schemas' limits are what bound it.
 * For an I/O task (`event-loop`) the loop only waits, and the job's signal cancels the wait.
 */
export class LocalPlacement implements Placement<AbortController> {
  constructor (
    readonly via: 'inline' | 'event-loop',
    private readonly upstreamUrl: string | undefined,
    private readonly users?: UserService
  ) {}

  newAbort (): AbortController {
    return new AbortController()
  }

  async run (task: AnyTask, input: unknown, abort: AbortController): Promise<RunOutcome> {
    const start = performance.now()
    const result = await task.run(input, { signal: abort.signal, upstreamUrl: this.upstreamUrl, users: this.users })
    return { result, queuedMs: 0, runMs: performance.now() - start, threadId }
  }

  async close (): Promise<void> {}
}
