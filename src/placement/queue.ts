import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { Queue, QueueEvents, type ConnectionOptions } from 'bullmq'
import { codedError, errors, isErrorCode, type ErrorBody } from '../errors.js'
import type { AnyTask } from '../tasks/types.js'
import { PoolAbort } from './pool.js'
import type { Placement, RunOutcome } from './types.js'

/** The queue every server and every worker host of one Redis share. */
export const QUEUE_NAME = 'cpu-jobs'

/**
 * How a dead worker host's jobs come back. A worker holds a lock on each job it runs and renews it
 * every WORKER_LOCK_MS / 2 (from its event loop, which is free: the jobs run on its Piscina threads).
 * A host that dies stops renewing; every STALLED_CHECK_MS each live worker looks for jobs whose lock
 * has expired and puts them back in the queue, where another host takes them. So a job starts again
 * at most WORKER_LOCK_MS + STALLED_CHECK_MS after its host died (6 s): with JOB_TIMEOUT_MS at its
 * default of 30 s, there is room for the job's own run after that. A job stalls at most
 * MAX_STALLS times; after that its caller is answered BACKEND_UNAVAILABLE.
 */
export const WORKER_LOCK_MS = 4000
export const STALLED_CHECK_MS = 2000
export const MAX_STALLS = 2

/** How long a server's start waits for Redis before it listens anyway. */
const START_WAIT_MS = 5000

/** How often a server asks Redis which worker hosts are connected (CLIENT LIST, by BullMQ's connection names). */
export const LIVENESS_INTERVAL_MS = 1000

/** A queued job's data: the task's name and its input, checked by the server and again by the worker. */
export interface QueuedJob {
  task: string
  input: unknown
}

/** What a worker host returns for each job. A task's failure is an answer too, not a BullMQ failure. */
export type QueueReply =
  | { ok: true, result: unknown, queuedMs: number, runMs: number, threadId: number, pid: number, host: string }
  | { ok: false, error: ErrorBody, pid: number, host: string }

interface Waiting {
  resolve: (outcome: RunOutcome) => void
  reject: (err: unknown) => void
  /** performance.now() when the job was added. */
  addedAt: number
}

export interface QueueDispatchOptions {
  redisUrl: string
  /** Jobs this process may have in the queue at once; one more is refused OVERLOADED. */
  maxQueue: number
}

/** BullMQ's connection options from a redis:// URL. */
export function connectionOf (redisUrl: string, extra: Record<string, unknown> = {}): ConnectionOptions {
  const url = new URL(redisUrl)
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : undefined
  return {
    host: url.hostname,
    port: url.port === '' ? 6379 : Number(url.port),
    ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
    ...(url.password === '' ? {} : { password: decodeURIComponent(url.password) }),
    ...(db === undefined || Number.isNaN(db) ? {} : { db }),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
    ...extra
  }
}

const unavailable = (what: string): Error => new errors.BACKEND_UNAVAILABLE(what)

/**
 * `DISPATCH=bullmq`: CPU jobs go to a BullMQ queue on REDIS_URL and `npm run worker` hosts run them
 * on their own Piscina pools. One per server process, with two Redis connections: the queue's
 * (adding and removing jobs, liveness) and one blocking connection for QueueEvents, which brings
 * back every job's result and is how all of this process's callers are answered.
 *
 * Refused at once, never left to time out: Redis not connected (the queue's connection does not
 * buffer commands while Redis is away), no worker host connected, or `maxQueue` jobs of this
 * process already in the queue. Jobs already waiting when Redis or the last worker host goes away
 * are answered BACKEND_UNAVAILABLE then.
 */
export class QueueDispatch implements Placement<PoolAbort> {
  readonly via = 'queue'
  readonly #queue: Queue<QueuedJob, QueueReply>
  readonly #events: QueueEvents
  readonly #waiting = new Map<string, Waiting>()
  readonly #maxQueue: number
  #workers = 0
  /** The queue's Redis connection, once connected: its status says whether Redis is there. */
  #client: { status: string } | undefined
  #liveness: NodeJS.Timeout | undefined
  #closed = false

  constructor ({ redisUrl, maxQueue }: QueueDispatchOptions) {
    this.#maxQueue = maxQueue
    // Commands fail at once while Redis is away instead of waiting in ioredis's offline queue.
    const connection = connectionOf(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
    this.#queue = new Queue(QUEUE_NAME, { connection })
    this.#events = new QueueEvents(QUEUE_NAME, { connection: connectionOf(redisUrl), autorun: false })
    // Both reconnect by themselves; while Redis is away their errors are expected and answered above.
    this.#queue.on('error', () => {})
    this.#events.on('error', () => {})
    this.#events.on('completed', ({ jobId, returnvalue }) => this.#completed(jobId, returnvalue))
    this.#events.on('failed', ({ jobId, failedReason }) => this.#failed(jobId, failedReason))
  }

  /**
   * Connects, starts listening for results, and learns which worker hosts are there: waits for that
   * up to START_WAIT_MS, then goes on (a server started while Redis is away answers
   * BACKEND_UNAVAILABLE until it is there, and serves once it is).
   */
  async start (): Promise<void> {
    const connected = this.#connect()
    this.#liveness = setInterval(() => { void this.#checkLiveness() }, LIVENESS_INTERVAL_MS)
    this.#liveness.unref()
    let timer: NodeJS.Timeout | undefined
    await Promise.race([connected, new Promise<void>((resolve) => { timer = setTimeout(resolve, START_WAIT_MS) })])
    clearTimeout(timer)
  }

  async #connect (): Promise<void> {
    const client = await this.#queue.waitUntilReady()
    this.#client = client
    // Redis gone: nothing waiting will be answered through it, so say so now.
    client.on('close', () => this.#failAll(unavailable('Redis')))
    this.#events.run().catch(() => {})
    await this.#events.waitUntilReady()
    await this.#checkLiveness()
  }

  newAbort (): PoolAbort {
    return new PoolAbort()
  }

  /** Worker hosts connected at the last look (at most LIVENESS_INTERVAL_MS ago). */
  get workers (): number {
    return this.#workers
  }

  /** Jobs of this process in the queue or running on a worker host. */
  get waiting (): number {
    return this.#waiting.size
  }

  async run (task: AnyTask, input: unknown, abort: PoolAbort): Promise<RunOutcome> {
    this.#admit()
    const id = randomUUID()
    return await new Promise<RunOutcome>((resolve, reject) => {
      // Listed before it is added: its result may come back before add() resolves.
      this.#waiting.set(id, { resolve, reject, addedAt: performance.now() })
      abort.once('abort', () => {
        if (!this.#waiting.delete(id)) return
        reject(abort.reason)
        // Taken out of the queue if no worker has it yet (a worker's lock makes this a no-op).
        this.#queue.remove(id).catch(() => {})
      })
      // Gone from Redis once answered, whichever way; a task's failure is answered, never retried.
      const options = { jobId: id, removeOnComplete: true, removeOnFail: true, attempts: 1 }
      this.#queue.add(task.name, { task: task.name, input }, options).catch(() => this.#fail(id, unavailable('Redis')))
    })
  }

  #admit (): void {
    if (this.#closed) throw new errors.OVERLOADED('the server is shutting down')
    if (this.#queueClientStatus() !== 'ready') throw unavailable('Redis')
    if (this.#workers === 0) throw unavailable('A worker host')
    if (this.#waiting.size >= this.#maxQueue) throw new errors.OVERLOADED(`${this.#maxQueue} jobs of this process in the queue`)
  }

  #queueClientStatus (): string {
    return this.#client?.status ?? 'connecting'
  }

  #completed (jobId: string, returnvalue: unknown): void {
    const waiting = this.#waiting.get(jobId)
    if (waiting === undefined) return // another process's job, or one answered already
    this.#waiting.delete(jobId)
    const reply = (typeof returnvalue === 'string' ? JSON.parse(returnvalue) : returnvalue) as QueueReply
    if (!reply.ok) {
      const { code, message } = reply.error
      waiting.reject(isErrorCode(code) ? codedError(code, message) : new errors.TASK_FAILED('(queued)'))
      return
    }
    const roundTripMs = performance.now() - waiting.addedAt
    waiting.resolve({
      result: reply.result,
      // Everything but the run: the queue, the worker host's own wait for a thread, and the crossings.
      queuedMs: Math.max(0, roundTripMs - reply.runMs),
      runMs: reply.runMs,
      threadId: reply.threadId,
      pid: reply.pid,
      host: reply.host
    })
  }

  /** BullMQ itself failed the job: it stalled MAX_STALLS times (its worker hosts died under it). */
  #failed (jobId: string, failedReason: string): void {
    const stalled = /stalled/i.test(failedReason)
    this.#fail(jobId, stalled ? unavailable('A worker host') : new errors.TASK_FAILED('(queued)'))
  }

  #fail (jobId: string, err: Error): void {
    const waiting = this.#waiting.get(jobId)
    if (waiting === undefined) return
    this.#waiting.delete(jobId)
    waiting.reject(err)
  }

  /** Answers every waiting job with `err` and takes those not yet running out of the queue. */
  #failAll (err: Error): void {
    for (const id of [...this.#waiting.keys()]) {
      this.#fail(id, err)
      this.#queue.remove(id).catch(() => {})
    }
  }

  async #checkLiveness (): Promise<void> {
    try {
      if (this.#queueClientStatus() !== 'ready') throw unavailable('Redis')
      this.#workers = await this.#queue.getWorkersCount()
    } catch {
      this.#workers = 0
      this.#failAll(unavailable('Redis'))
      return
    }
    if (this.#workers === 0) this.#failAll(unavailable('A worker host'))
  }

  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#liveness)
    this.#failAll(new errors.OVERLOADED('the server is shutting down'))
    await Promise.allSettled([this.#events.close(), this.#queue.close()])
  }
}
