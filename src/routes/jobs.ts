import type { FastifyPluginAsync } from 'fastify'
import { errors, toErrorBody } from '../errors.js'
import type { JobAnswer, JobRunner, JobTiming } from '../jobs.js'

export const MAX_BATCH = 1000

const jobBody = {
  type: 'object',
  properties: {
    task: { type: 'string', minLength: 1, maxLength: 64 },
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

type BatchItem = ({ ok: true } & JobAnswer) | { ok: false, error: ReturnType<typeof toErrorBody> }

export const jobRoutes: FastifyPluginAsync<{ runner: JobRunner }> = async (app, { runner }) => {
  app.post<{ Body: { task: string, input?: unknown } }>('/jobs', { schema: { body: jobBody } }, async (request, reply) => {
    const answer = await runner.run(request.body.task, request.body.input)
    reply.header('server-timing', serverTiming(answer.timing))
    return answer
  })

  // Every job of a batch runs at once and is answered in input order; one failure never fails the batch.
  app.post<{ Body: { jobs: unknown[] } }>('/jobs/batch', { schema: { body: batchBody } }, async (request) => {
    const settled = await Promise.allSettled(request.body.jobs.map(async (job, i) => {
      if (typeof job !== 'object' || job === null || Array.isArray(job) || Object.keys(job).some((k) => k !== 'task' && k !== 'input')) {
        throw new errors.BAD_INPUT(`jobs[${i}] must be an object with "task" and "input" only`)
      }
      const { task, input } = job as { task?: unknown, input?: unknown }
      return await runner.run(task, input)
    }))
    const results: BatchItem[] = settled.map((s) => s.status === 'fulfilled'
      ? { ok: true, ...s.value }
      : { ok: false, error: toErrorBody(s.reason) })
    return { results }
  })
}
