/** The pool thread's side: Piscina loads this file in each thread and calls the default export per job. */
import { performance } from 'node:perf_hooks'
import { threadId } from 'node:worker_threads'
import { loadTasks } from '../tasks/load.js'
import { isErrorCode } from '../errors.js'
import type { PoolReply, PoolRequest } from './messages.js'

const tasks = await loadTasks()
// A pool job is cancelled by terminating its thread, so the task itself is never signalled.
const never = new AbortController().signal

export default async function runJob ({ task: name, input, upstreamUrl }: PoolRequest): Promise<PoolReply> {
  const task = tasks.get(name)
  if (task === undefined) throw new Error(`pool thread has no task ${name}`)
  const start = performance.now()
  const startedAt = performance.timeOrigin + start
  try {
    const result = await task.run(input, { signal: never, upstreamUrl })
    return { ok: true, result, startedAt, runMs: performance.now() - start, threadId }
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (!isErrorCode(code)) throw err
    return { ok: false, code, message: (err as Error).message, startedAt, runMs: performance.now() - start, threadId }
  }
}
