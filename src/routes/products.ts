import type { FastifyPluginAsync } from 'fastify'
import type { BackendHandles } from '../backends/handles.js'
import { gatherProducts } from '../users/products.js'

/**
 * `GET /api/products`: the user service's gather over PostgreSQL, Redis and the delay service
 * (src/users/products.ts).
 */
export const productRoutes: FastifyPluginAsync<{ backends: BackendHandles, upstreamUrl: string | undefined }> =
  async (app, { backends, upstreamUrl }) => {
    app.get('/api/products', async () => await gatherProducts(backends, upstreamUrl))
  }
