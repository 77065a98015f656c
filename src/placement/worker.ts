/** The pool thread's side: Piscina loads this file in each thread and calls the default export per job. */
import { setPriority } from 'node:os'
import { performance } from 'node:perf_hooks'
import { threadId, type MessagePort } from 'node:worker_threads'
import { workerData } from 'piscina'
import type { Backends } from '../backends/connections.js'
import { RunContext, type TaskResources } from '../tasks/context.js'
import { loadTasks } from '../tasks/load.js'
import { isErrorCode, type ErrorCode } from '../errors.js'
import { CONTROL_ABORT, PROBE_TASK, type PoolReply, type PoolRequest, type PoolWorkerData } from './messages.js'
import { begin, end } from './tickets.js'
import { DeferredStarts } from './deferred-starts.js'

const { nice, faultTasks, backends, logLevel, upstreamUrl, tickets } = workerData as PoolWorkerData
// On Linux each thread has its own nice value, and setpriority() of "0" is the calling thread's:
// the event loop keeps the default, so that when it wakes (a request to read, an answer to send)
// it takes a core from a thread computing rather than wait for the scheduler to share one out.
// Elsewhere the same call would lower the whole process, the loop with it, so it is Linux only.
// Raising one's own nice value needs no privilege; if the call fails all the same, the thread
// runs as the loop does, which is how it ran before this existed.
if (nice > 0 && process.platform === 'linux') {
  try {
    setPriority(nice)
  } catch {}
}
// The tasks are loaded before the thread says it is ready, but without top-level await: Piscina
// first tries to require() this file, and Node 20's require() of an ES module with top-level
// await can abort the whole process (a V8 fatal error, seen with 50 threads starting at once)
// instead of throwing. The default export is a promise of the handler instead, which Piscina
// awaits before it gives the thread a job.
let tasks: Awaited<ReturnType<typeof loadTasks>> = new Map()
const backendsConfigured = backends.databaseUrl !== undefined || backends.redisUrl !== undefined
let threadBackends: Promise<Backends> | undefined

/**
 * This thread's own backends, opened on its first job of a task that uses them (`db`, `cache`).
 * pg and ioredis are loaded then too: most threads never run such a job, and every thread's
 * start-up counts. That job waits for them as the event loop does at start-up (warmUp): ioredis
 * refuses commands while it connects (no offline queue), and it would read past a healthy cache.
 */
async function openBackends (): Promise<Backends> {
  const [{ Backends }, { createLogger }] = await Promise.all([import('../backends/connections.js'), import('../log.js')])
  const own = new Backends({ ...backends, pgPoolMin: 0, pgPoolMax: 1 }, createLogger({ logLevel }).child({ threadId }))
  await own.warmUp()
  return own
}

async function backendsOfThisThread (): Promise<Backends> {
  threadBackends ??= openBackends()
  return await threadBackends
}
/** The thread's own resources, for a job whose task does not use the backends. */
const resources: TaskResources = { upstreamUrl, postgres: undefined, redis: undefined }
/** The context of every job that nothing here aborts and that needs no backends: one for the thread. */
const unaborted = new RunContext(resources)

/**
 * A job's context. A CPU job is cancelled by terminating its thread (synchronous code hears nothing
 * else), so nothing listens for its abort; an I/O job is told over its control port.
 */
function contextOf (control: MessagePort | undefined, own: Backends | undefined): RunContext {
  if (control === undefined && own === undefined) return unaborted
  const context = new RunContext(own === undefined
    ? resources
    : { upstreamUrl, postgres: own.postgres, redis: own.redis })
  control?.once('message', (m) => { if (m === CONTROL_ABORT) context.abort(new Error('cancelled by the event loop')) })
  return context
}

/** When this thread last finished a job (CPU jobs run one after another, even when it is handed two). */
let lastEnd = -Infinity

/**
 * A job's result, begun at `start` (this thread's clock), after `idleMs` without a job. Each field
 * written out, here and in refused(): a literal that spreads an object is built through V8's runtime.
 */
function answered (result: unknown, start: number, idleMs: number): PoolReply {
  const runMs = performance.now() - start
  return { ok: true, result, startedAt: performance.timeOrigin + start, runMs, threadId, idleMs }
}

/** A job's coded error, as answered() says its result. */
function refused (code: ErrorCode, message: string, start: number, idleMs: number): PoolReply {
  const runMs = performance.now() - start
  return { ok: false, code, message, startedAt: performance.timeOrigin + start, runMs, threadId, idleMs }
}

const isPromiseLike = (value: unknown): value is PromiseLike<unknown> =>
  typeof (value as { then?: unknown } | null | undefined)?.then === 'function'

/** A CPU job cancelled before this thread reached it. */
const SKIPPED: PoolReply = { ok: false, skipped: true }

/**
 * True from the end of a job until the microtasks queued then have run. Piscina reads every job
 * waiting in the thread's port at once, and starts each as a microtask: a job handed early
 * (pipelined) and read together with the one before it would start, and run its whole course (or
 * for ever, if it runs away), before that one's answer is sent. Such a job waits a turn of the
 * thread's event loop first, still cancellable and recallable (not begun) while it waits.
 */
let answerPending = false
const answerSent = (): void => { answerPending = false }
/** The jobs waiting so, started one per turn in the order they came. */
const deferred = new DeferredStarts()

async function runJob ({ task: name, input, control, slot }: PoolRequest): Promise<PoolReply> {
  if (answerPending || deferred.size > 0) await deferred.wait()
  if (slot !== undefined && !begin(tickets, slot, threadId)) return SKIPPED
  const start = performance.now()
  const idleMs = start - lastEnd
  if (name === PROBE_TASK) {
    lastEnd = start
    return answered(null, start, idleMs)
  }
  const task = tasks.get(name)
  if (task === undefined) throw new Error(`pool thread has no task ${name}`)
  try {
    // Only a task that uses the backends waits for them; every other job goes straight to its task.
    const own = task.usesBackends === true && backendsConfigured ? await backendsOfThisThread() : undefined
    const ran = task.run(input, contextOf(control, own))
    // A synchronous task's job ends here and now, not a microtask later: its ticket says DONE as
    // soon as it has, so that if its thread dies before its answer is read, the pool runs it again
    // rather than take it for the job that killed the thread.
    const result = isPromiseLike(ran) ? await ran : ran
    return answered(result, start, idleMs)
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (!isErrorCode(code)) throw err
    return refused(code, (err as Error).message, start, idleMs)
  } finally {
    lastEnd = performance.now()
    if (slot !== undefined) end(tickets, slot)
    control?.close()
    answerPending = true
    queueMicrotask(answerSent)
  }
}

export default loadTasks({ faults: faultTasks }).then((loaded) => {
  tasks = loaded
  return runJob
})
