import type { FastifyPluginAsync } from 'fastify'
import type { TaskRegistry } from '../tasks/registry.js'

export const taskRoutes: FastifyPluginAsync<{ registry: TaskRegistry }> = async (app, { registry }) => {
  app.get('/tasks', async () => ({ tasks: registry.catalogue }))
}
