import underPressure from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../config.js'
import { errors } from '../errors.js'

/** How often event-loop delay and utilization are sampled; the decision uses the last sample. */
const SAMPLE_INTERVAL_MS = 250

/**
 * Sheds requests with 503 OVERLOADED (and Retry-After) while this process's event loop is too
 * busy to serve them in time: mean loop delay over the last sample above MAX_EVENT_LOOP_DELAY_MS,
 * or utilization above MAX_EVENT_LOOP_UTILIZATION. The refusal is made in onRequest, before the body
 * is read or parsed, so it costs next to nothing. /health and /metrics are never shed: an operator
 * needs them most when the server is loaded. (The pool's own bound, MAX_QUEUE, sheds jobs waiting
 * for a thread; this sheds what the event loop itself cannot keep up with.)
 */
export async function installShedding (app: FastifyInstance, config: Pick<Config, 'maxEventLoopDelayMs' | 'maxEventLoopUtilization'>): Promise<void> {
  await app.register(underPressure, {
    maxEventLoopDelay: config.maxEventLoopDelayMs,
    maxEventLoopUtilization: config.maxEventLoopUtilization,
    eventLoopUtilizationMode: 'interval',
    sampleInterval: SAMPLE_INTERVAL_MS,
    pressureHandler: async (_request, _reply, type, value) => {
      throw new errors.OVERLOADED(`${type} ${Math.round(Number(value) * 1000) / 1000} over its limit`)
    }
  })
}

/** Route option for the routes that must answer even under pressure. */
export const neverShed = { pressureHandler: (): undefined => undefined } as const

