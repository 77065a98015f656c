import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { errors, toErrorBody } from '../errors.js'
import type { JobAnswer, JobRunner, JobTiming } from '../jobs.js'
import { MAX_TASK_NAME } from '../tasks/registry.js'

export const MAX_BATCH = 1000
/** A job is a task name and a small input (every task's input is a few numbers): 64 KiB is ample. */
export const JOB_BODY_LIMIT = 64 * 1024
/** A full batch of MAX_BATCH jobs fits with room to spare. */
export const BATCH_BODY_LIMIT = 1024 * 1024

const jobBody = {
  type: 'object',
  properties: {
    task: { type: 'string', minLength: 1, maxLength: MAX_TASK_NAME },
    input: { type: 'object' }
  },
  required: ['task'],
  additionalProperties: false
} as const

const batchBody = {
  type: 'object',
  properties: { jobs: { type: 'array', minItems: 1, maxItems: MAX_BATCH } },
  required: ['jobs'],
  additionalProperties: false
} as const

function serverTiming ({ queuedMs, runMs, totalMs }: JobTiming): string {
  return `queue;dur=${queuedMs}, run;dur=${runMs}, total;dur=${totalMs}`
}

/**
 * Aborts when the client goes away before its answer is written, so that its jobs stop: queued
 * ones never start, pool threads are terminated, waits on the event loop end.
 */
function cancelledWhenGone (reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  const gone = (): void => {
    if (!reply.raw.writableFinished) controller.abort(new errors.CANCELLED())
  }
  if (reply.raw.closed) gone() // made lazily: the client may have left already
  else reply.raw.once('close', gone)
  return controller.signal
}

type BatchItem = ({ ok: true } & JobAnswer) | { ok: false, error: ReturnType<typeof toErrorBody> }

export const jobRoutes: FastifyPluginAsync<{ runner: JobRunner }> = async (app, { runner }) => {
  app.post<{ Body: { task: string, input?: unknown } }>('/jobs', { bodyLimit: JOB_BODY_LIMIT, schema: { body: jobBody } }, async (request, reply) => {
    const answer = await runner.run(request.body.task, request.body.input, () => cancelledWhenGone(reply))
    reply.header('server-timing', serverTiming(answer.timing))
    return answer
  })

  // Every job of a batch runs at once and is answered in input order; one failure never fails the batch.
  app.post<{ Body: { jobs: unknown[] } }>('/jobs/batch', { bodyLimit: BATCH_BODY_LIMIT, schema: { body: batchBody } }, async (request, reply) => {
    const cancel = cancelledWhenGone(reply)
    const settled = await Promise.allSettled(request.body.jobs.map(async (job, i) => {
      if (typeof job !== 'object' || job === null || Array.isArray(job) || Object.keys(job).some((k) => k !== 'task' && k !== 'input')) {
        throw new errors.BAD_INPUT(`jobs[${i}] must be an object with "task" and "input" only`)
      }
      const { task, input } = job as { task?: unknown, input?: unknown }
      return await runner.run(task, input, cancel)
    }))
    const results: BatchItem[] = settled.map((s) => s.status === 'fulfilled'
      ? { ok: true, ...s.value }
      : { ok: false, error: toErrorBody(s.reason) })
    return { results }
  })
}
