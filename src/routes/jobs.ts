import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { errors } from '../errors.js'
import type { Control, JobAnswer, JobRunner, JobTiming } from '../jobs.js'
import type { JobAbort } from '../placement/types.js'

export const MAX_BATCH = 1000
/** A job is a task name and a small input (every task's input is a few numbers): 64 KiB is ample. */
export const JOB_BODY_LIMIT = 64 * 1024
/** A full batch of MAX_BATCH jobs fits with room to spare. */
export const BATCH_BODY_LIMIT = 1024 * 1024

// Only the batch's own shape: each job in it, like the body of POST /jobs, is checked by the job
// runner's one envelope schema, so that every transport checks a job the same way, once.
const batchBody = {
  type: 'object',
  properties: { jobs: { type: 'array', minItems: 1, maxItems: MAX_BATCH } },
  required: ['jobs'],
  additionalProperties: false
} as const

// A job's answer (JobAnswer), so that Fastify serializes it with a compiled function rather than
// JSON.stringify; the result, whatever the task returns, is left to JSON.stringify. No property is
// listed as required: fast-json-stringify would write those first, out of the answer's order.
const jobAnswer = {
  type: 'object',
  properties: {
    task: { type: 'string' },
    kind: { type: 'string' },
    result: {},
    timing: {
      type: 'object',
      properties: { queuedMs: { type: 'number' }, runMs: { type: 'number' }, totalMs: { type: 'number' } }
    },
    ranOn: {
      type: 'object',
      properties: { host: { type: 'string' }, pid: { type: 'integer' }, threadId: { type: 'integer' }, via: { type: 'string' } }
    }
  }
} as const

function serverTiming ({ queuedMs, runMs, totalMs }: JobTiming): string {
  return `queue;dur=${queuedMs}, run;dur=${runMs}, total;dur=${totalMs}`
}

/**
 * The jobs of one request are cancelled when its client goes away before the answer is written:
 * queued ones never start, pool threads are terminated, waits on the event loop end. Each job's
 * abort is tracked only if the job can be cancelled (see Control), and one `close` listener
 * serves them all.
 */
function cancelledWhenGone (reply: FastifyReply): Control {
  let jobs: Set<JobAbort> | undefined
  return (abort) => {
    if (jobs === undefined) {
      jobs = new Set()
      const gone = (): void => {
        if (reply.raw.writableFinished) return
        for (const job of jobs as Set<JobAbort>) job.abort(new errors.CANCELLED())
      }
      if (!reply.raw.closed) reply.raw.once('close', gone)
    }
    // the client has left already
    if (reply.raw.closed && !reply.raw.writableFinished) abort.abort(new errors.CANCELLED())
    jobs.add(abort)
  }
}

export const jobRoutes: FastifyPluginAsync<{ runner: JobRunner }> = async (app, { runner }) => {
  // A callback handler on the runner's callback: no promise of the handler's, none of run()'s, and
  // no turn of the microtask queue between the job's end and its answer being written.
  app.post('/jobs', { bodyLimit: JOB_BODY_LIMIT, schema: { response: { 200: jobAnswer } } }, (request, reply) => {
    const context = { control: cancelledWhenGone(reply), arrivedFrom: request.arrivedFrom }
    runner.submit(request.body, context, (error, answer) => {
      if (error !== undefined) {
        reply.send(error)
        return
      }
      reply.header('server-timing', serverTiming((answer as JobAnswer).timing))
      reply.send(answer)
    })
  })

  // Every job of a batch runs at once and is answered in input order; one failure never fails the batch.
  app.post<{ Body: { jobs: unknown[] } }>('/jobs/batch', { bodyLimit: BATCH_BODY_LIMIT, schema: { body: batchBody } }, async (request, reply) => {
    const control = cancelledWhenGone(reply)
    const results = await Promise.all(request.body.jobs.map((job, i) => runner.settle(job, { control, where: `jobs[${i}]`, arrivedFrom: request.arrivedFrom })))
    return { results }
  })
}
