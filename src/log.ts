import { pino, type Logger } from 'pino'
import { usesPool, type Config } from './config.js'

/** The logger of the processes that serve no HTTP (the cluster primary); Fastify makes its own per worker. */
export function createLogger (config: Pick<Config, 'logLevel'>): Logger {
  return pino({ level: config.logLevel })
}

/** The effective configuration, as the start-up line gives it. */
export function describe (config: Config, address: string): Record<string, unknown> {
  return {
    mode: config.mode,
    processes: config.processes,
    threadsPerProcess: usesPool(config) ? config.threads : 0,
    cpuJobs: config.cpuJobs,
    ioJobs: config.ioJobs,
    dispatch: config.dispatch,
    jobTimeoutMs: config.jobTimeoutMs,
    maxQueue: config.maxQueue,
    shedding: {
      queueTargetMs: config.shedTargetMs,
      queueIntervalMs: config.shedIntervalMs,
      loopTargetMs: config.shedLoopTargetMs,
      loopIntervalMs: config.shedLoopIntervalMs
    },
    upstream: config.upstreamUrl,
    address
  }
}
