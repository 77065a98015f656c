/**
 * The naive server: the hybrid shape (a cluster of `cores` Fastify workers, CPU tasks on a Piscina
 * pool of cores / workers threads, I/O tasks awaited on the loop) built from Fastify and Piscina
 * alone: no input validation, no timeouts, no queue bound, no cancellation, no metrics, no
 * MessagePack. What the project's own layers cost is measured against it.
 */
import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import { fileURLToPath, pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import { Piscina } from 'piscina'
import { taskDirs } from '../../../src/paths.js'
import { RunContext } from '../../../src/tasks/context.js'
import type { AnyTask } from '../../../src/tasks/types.js'

const cores = availableParallelism()
const processes = Number(process.env.PROCESSES ?? cores)

if (cluster.isPrimary) {
  let listening = 0
  for (let i = 0; i < processes; i++) {
    cluster.fork().once('listening', (a: { address: string, port: number }) => {
      if (++listening === processes) console.log(JSON.stringify({ msg: 'server listening', address: `http://${a.address}:${a.port}` }))
    })
  }
  process.once('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM')
    process.exit(0)
  })
} else {
  const pool = new Piscina({ filename: fileURLToPath(new URL('./naive-worker.js', import.meta.url)), minThreads: Math.max(1, Math.floor(cores / processes)), maxThreads: Math.max(1, Math.floor(cores / processes)) })
  const io = new Map<string, AnyTask>()
  const app = Fastify()
  app.post<{ Body: { task: string, input: unknown } }>('/jobs', async (request) => {
    const { task, input } = request.body
    if (task === 'fib' || task === 'spin' || task === 'primes' || task === 'hash' || task === 'json' || task === 'compress') {
      return { task, result: await pool.run({ task, input }) }
    }
    let t = io.get(task)
    if (t === undefined) {
      t = (await import(pathToFileURL(`${taskDirs.io}/${task}.js`).href) as { default: AnyTask }).default
      io.set(task, t)
    }
    return {
      task,
      result: await t.run(input, new RunContext({ upstreamUrl: process.env.UPSTREAM_URL }))
    }
  })
  await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' })
  process.once('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
}
