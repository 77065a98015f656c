import cluster from 'node:cluster'
import type { FastifyPluginAsync } from 'fastify'
import { requestClusterMetrics } from '../metrics/cluster.js'
import type { ServerMetrics } from '../metrics/server.js'

/** GET /metrics: Prometheus text, summed over every cluster worker whichever one answers. */
export const metricsRoutes: FastifyPluginAsync<{ metrics: ServerMetrics }> = async (app, { metrics }) => {
  app.get('/metrics', { config: { neverShed: true } }, async (_request, reply) => {
    // A worker being retired has let go of its channel to the primary: it answers for itself.
    const fromPrimary = cluster.isWorker && process.connected
    const text = fromPrimary ? await requestClusterMetrics() : await metrics.registry.metrics()
    return reply.type(metrics.registry.contentType).send(text)
  })
}
