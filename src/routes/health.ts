import type { FastifyPluginAsync } from 'fastify'
import type { Config } from '../config.js'
import { usesPool } from '../config.js'

// The answer's shape, which lets Fastify compile its serializer (fast-json-stringify) rather than
// call JSON.stringify on every answer. As for a job's answer (routes/jobs.ts), nothing is listed as
// required: the handler writes every field, and a list would only add a check per answer.
const healthAnswer = {
  type: 'object',
  properties: {
    status: { type: 'string' },
    mode: { type: 'string' },
    processes: { type: 'integer' },
    threads: { type: 'integer' },
    cpuJobs: { type: 'string' },
    ioJobs: { type: 'string' },
    dispatch: { type: 'string' },
    pid: { type: 'integer' },
    uptimeS: { type: 'integer' }
  }
} as const

export const healthRoutes: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  // Pool threads per process at most; 0 when this configuration runs no pool.
  const threads = usesPool(config) ? config.threads : 0
  // One literal with every field, not a fixed object spread and added to: V8 builds that through
  // its runtime on every answer (docs/performance.md, "What V8's sampling profiler does not show").
  app.get('/health', { config: { open: true, neverShed: true }, schema: { response: { 200: healthAnswer } } }, async () => ({
    status: 'ok',
    mode: config.mode,
    processes: config.processes,
    threads,
    cpuJobs: config.cpuJobs,
    ioJobs: config.ioJobs,
    // Where pool jobs run: this process's pool, or worker hosts through BullMQ.
    dispatch: config.dispatch,
    pid: process.pid,
    uptimeS: Math.round(process.uptime())
  }))
}
