/**
 * `npm run worker`: a worker host for `DISPATCH=bullmq`. Takes CPU jobs from the BullMQ queue on
 * REDIS_URL and runs each on this host's Piscina pool (THREADS threads, by default one per core),
 * so that its event loop stays free to renew the locks of the jobs it holds: a job whose lock lapses
 * is taken for a dead host's and run again elsewhere. No HTTP port. SIGTERM or SIGINT: takes no more
 * jobs, finishes those it has, exits 0.
 */
import { hostname } from 'node:os'
import { Worker, type Job } from 'bullmq'
import { ConfigError, parseConfig, type Config } from '../config.js'
import { JobRunner } from '../jobs.js'
import { createLogger } from '../log.js'
import {
  connectionOf, MAX_STALLS, QUEUE_NAME, STALLED_CHECK_MS, WORKER_LOCK_MS, type QueuedJob, type QueueReply
} from '../placement/queue.js'
import { TaskRegistry } from '../tasks/registry.js'

function readConfig (): Config & { redisUrl: string } {
  try {
    // hybrid's layout in one process: every core's thread in this process's pool.
    const config = parseConfig({ ...process.env, MODE: 'hybrid', PROCESSES: '1', CPU_JOBS: 'pool', IO_JOBS: 'event-loop', DISPATCH: 'local' })
    if (config.redisUrl === undefined) throw new ConfigError('REDIS_URL', '', 'a worker host needs REDIS_URL, the Redis its queue lives on')
    return { ...config, redisUrl: config.redisUrl }
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`Invalid configuration: ${err.message}\n`)
    process.exit(2)
  }
}

const config = readConfig()
const log = createLogger(config)
const host = hostname()
const registry = await TaskRegistry.load({ faults: config.faultTasks })
const runner = new JobRunner(registry, config)
await runner.start()

/** Runs one queued job on the pool; a task's failure is returned as an answer, not thrown to BullMQ. */
async function run (job: Job<QueuedJob, QueueReply>): Promise<QueueReply> {
  const outcome = await runner.settle({ task: job.data.task, input: job.data.input })
  if (!outcome.ok) return { ok: false, error: outcome.error, pid: process.pid, host }
  const { result, timing, ranOn } = outcome
  const { queuedMs, runMs } = timing
  return { ok: true, result, queuedMs, runMs, threadId: ranOn.threadId, pid: process.pid, host }
}

const worker = new Worker<QueuedJob, QueueReply>(QUEUE_NAME, run, {
  connection: connectionOf(config.redisUrl, { maxRetriesPerRequest: null }),
  // One job per pool thread: a host takes no more than it can start, and leaves the rest to others.
  concurrency: config.threads,
  lockDuration: WORKER_LOCK_MS,
  stalledInterval: STALLED_CHECK_MS,
  maxStalledCount: MAX_STALLS,
  // Named, so that CLIENT LIST (how servers know a host is alive) says which host and process it is.
  name: `${host}:${process.pid}`,
  autorun: false
})
// Redis away: BullMQ reconnects by itself and says so here; the jobs it holds stay locked until then.
worker.on('error', (err) => log.warn({ err: err.message }, 'worker: Redis error'))
void worker.run()
await worker.waitUntilReady()
log.info({ queue: QUEUE_NAME, threads: config.threads, concurrency: config.threads, jobTimeoutMs: config.jobTimeoutMs, lockMs: WORKER_LOCK_MS, stalledCheckMs: STALLED_CHECK_MS, host, pid: process.pid }, 'worker host ready')

let closing = false
const drain = (signal: NodeJS.Signals): void => {
  if (closing) return
  closing = true
  log.info({ signal }, 'draining')
  // Past JOB_TIMEOUT_MS every job it holds has been answered TIMEOUT by its server anyway.
  setTimeout(() => process.exit(1), config.jobTimeoutMs + 2000).unref()
  worker.close()
    .then(async () => await runner.close())
    .then(() => {
      log.info('worker host stopped')
      process.exit(0)
    }, (err: unknown) => {
      log.error({ err }, 'worker host failed to stop cleanly')
      process.exit(1)
    })
}
process.on('SIGTERM', drain)
process.on('SIGINT', drain)
