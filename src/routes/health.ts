import type { FastifyPluginAsync } from 'fastify'
import type { Config } from '../config.js'
import { usesPool } from '../config.js'

export const healthRoutes: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const fixed = {
    status: 'ok',
    mode: config.mode,
    processes: config.processes,
    // Pool threads per process at most; 0 when this configuration runs no pool.
    threads: usesPool(config) ? config.threads : 0,
    cpuJobs: config.cpuJobs,
    ioJobs: config.ioJobs,
    // Where pool jobs run: this process's pool, or worker hosts through BullMQ.
    dispatch: config.dispatch,
    pid: process.pid
  }
  app.get('/health', { config: { open: true, neverShed: true } }, async () => ({ ...fixed, uptimeS: Math.round(process.uptime()) }))
}
