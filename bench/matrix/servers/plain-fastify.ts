/**
 * The reference: Fastify and nothing else, one process, as a user would write it in twenty lines:
 * a trivial GET, and a POST /jobs that parses the same JSON body as this server's, checks it with a
 * body schema, and answers fib(n) inline, with no placement, timing, metrics, shedding or
 * cancellation. The load client does the same work against both. With HEALTH_ANSWER=same, its
 * `/health` gives this server's answer instead of `{ status: 'ok' }`.
 */
import Fastify from 'fastify'

function fib (n: number): number {
  return n < 2 ? n : fib(n - 1) + fib(n - 2)
}

const app = Fastify()
if (process.env.HEALTH_ANSWER === 'same') {
  // The control for the `/health` figure: the answer this server gives (its fields, with a response
  // schema, as in src/routes/health.ts), so that a ratio against it counts what the server does
  // per request, not how long its answer is.
  const text = { type: 'string' }
  const integer = { type: 'integer' }
  const properties = {
    status: text,
    mode: text,
    processes: integer,
    threads: integer,
    cpuJobs: text,
    ioJobs: text,
    dispatch: text,
    pid: integer,
    uptimeS: integer
  }
  app.get('/health', { schema: { response: { 200: { type: 'object', properties } } } }, async () => ({
    status: 'ok',
    mode: 'event-loop',
    processes: 1,
    threads: 0,
    cpuJobs: 'inline',
    ioJobs: 'event-loop',
    dispatch: 'local',
    pid: process.pid,
    uptimeS: Math.round(process.uptime())
  }))
} else {
  app.get('/health', async () => ({ status: 'ok' }))
}
const body = {
  type: 'object',
  properties: {
    task: { type: 'string', minLength: 1, maxLength: 64 },
    input: { type: 'object', properties: { n: { type: 'integer', minimum: 0, maximum: 35 } }, required: ['n'], additionalProperties: false }
  },
  required: ['task', 'input'],
  additionalProperties: false
}
app.post<{ Body: { task: string, input: { n: number } } }>('/jobs', { schema: { body } }, async (request) => ({ task: request.body.task, result: fib(request.body.input.n) }))
const address = await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' })
console.log(JSON.stringify({ msg: 'server listening', address }))
process.once('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
