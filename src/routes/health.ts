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
  // Every field written out, not `{ ...fixed, uptimeS }`: V8 builds a literal that spreads an object
  // and then adds a property through its runtime, slow path (measured with perf: about 5 µs per
  // answer, a sixth of what the whole request costs), where this literal has one shape every time.
  app.get('/health', { config: { open: true, neverShed: true } }, async () => ({
    status: fixed.status,
    mode: fixed.mode,
    processes: fixed.processes,
    threads: fixed.threads,
    cpuJobs: fixed.cpuJobs,
    ioJobs: fixed.ioJobs,
    dispatch: fixed.dispatch,
    pid: fixed.pid,
    uptimeS: Math.round(process.uptime())
  }))
}
