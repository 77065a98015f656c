import type { FastifyPluginAsync } from 'fastify'
import type { AutoRule } from '../placement/auto-rule.js'
import type { TaskRegistry } from '../tasks/registry.js'

type Options = { registry: TaskRegistry, auto?: AutoRule | undefined }

/**
 * The catalogue; with `CPU_JOBS=auto`, also where this process now puts each CPU task it has seen
 * and why, with its estimated run time and the pool's round trip.
 */
export const taskRoutes: FastifyPluginAsync<Options> = async (app, { registry, auto }) => {
  app.get('/tasks', async () => {
    if (auto === undefined) return { tasks: registry.catalogue }
    const placed = Object.fromEntries([...auto.tasks()].map(([name, t]) =>
      [name, { placement: t.placement, reason: t.reason, runMs: t.runMs, jobs: t.jobs }]))
    return { tasks: registry.catalogue, auto: { pid: process.pid, poolRoundTripMs: auto.roundTripMs, tasks: placed } }
  })
}
