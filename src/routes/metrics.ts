import cluster from 'node:cluster'
import type { FastifyPluginAsync } from 'fastify'
import { requestClusterMetrics } from '../metrics/cluster.js'
import type { ServerMetrics } from '../metrics/server.js'

/** GET /metrics: Prometheus text, summed over every cluster worker whichever one answers. */
export const metricsRoutes: FastifyPluginAsync<{ metrics: ServerMetrics }> = async (app, { metrics }) => {
  app.get('/metrics', { config: { neverShed: true } }, async (_request, reply) => {
    const text = cluster.isWorker ? await requestClusterMetrics() : await metrics.registry.metrics()
    return reply.type(metrics.registry.contentType).send(text)
  })
}
