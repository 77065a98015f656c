import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import type { Config } from './config.js'
import { errors, RETRY_AFTER_S, toErrorBody } from './errors.js'
import { LoopDelay, QueueDelayRule } from './admission.js'
import { installRequestHooks, refusalHoldMs } from './http/hooks.js'
import { JobRunner } from './jobs.js'
import { healthRoutes } from './routes/health.js'
import { jobRoutes } from './routes/jobs.js'
import { taskRoutes } from './routes/tasks.js'
import { wsRoutes } from './routes/ws.js'
import { metricsRoutes } from './routes/metrics.js'
import { ServerMetrics } from './metrics/server.js'
import { TaskRegistry } from './tasks/registry.js'
import { Backends, backendsConfig } from './backends/connections.js'
import { productRoutes } from './routes/products.js'
import { userRoutes } from './routes/users.js'
import { WsConnections } from './ws/connections.js'
import cluster from 'node:cluster'
import { ProcessSampler } from './dashboard/sample.js'
import { localFeed, workerFeed } from './dashboard/feed.js'
import { dashboardRoutes } from './routes/dashboard.js'
import { createLogger, requestLoggers } from './log.js'

/** Largest body any route accepts; each route sets its own, lower where its input is small. */
export const BODY_LIMIT = 1024 * 1024
/** Node checks request and header timeouts on this interval (30 s by default, too coarse for slowloris). */
const CONNECTIONS_CHECK_MS = 1000

declare module 'fastify' {
  interface FastifyInstance {
    jobs: JobRunner
    websockets: WsConnections
  }
}

/**
 * The whole HTTP application for one process, ready for inject() or listen(); it never listens
 * itself. Closing it answers what is in flight, then closes the pool.
 */
export async function buildApp (config: Config): Promise<FastifyInstance> {
  // Fastify is given no logger of its own, only a factory of each request's logger over this one,
  // made only when the request writes a line (src/log.ts), and request lines off. Given a logger,
  // Fastify also times every response and listens for its end ('finish' and 'error') to log its
  // completion: two listeners added and removed per request, which write nothing with request
  // lines off and cost /health 3-6% against plain Fastify (docs/performance.md). app.log is set to
  // this logger below, so that Fastify and its plugins write their own lines through it.
  const log = createLogger(config)
  const app = Fastify({
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: requestLoggers(log),
    bodyLimit: BODY_LIMIT,
    // Slow clients: the whole request must arrive within REQUEST_TIMEOUT_MS and its headers within
    // HEADERS_TIMEOUT_MS (slowloris, stalled bodies: 408 and closed); an idle keep-alive connection
    // is closed after KEEP_ALIVE_TIMEOUT_MS. None of them limits how long a job takes: that is
    // JOB_TIMEOUT_MS, so no socket inactivity timeout is set.
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    http: { headersTimeout: config.headersTimeoutMs, connectionsCheckingInterval: CONNECTIONS_CHECK_MS },
    // Route schemas validate strictly, like the task schemas: no coercion, nothing removed.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    forceCloseConnections: 'idle',
    // While draining, a request that reaches this process is still served, not answered 503: in a
    // cluster the primary may hand this worker a connection just as it starts to close (a rolling
    // restart), and that client did nothing wrong. Each answer then closes its connection (below).
    return503OnClosing: false
  })
  app.log = log

  const registry = await TaskRegistry.load({ faults: config.faultTasks })
  // PostgreSQL and Redis when configured; without them the user service answers NOT_CONFIGURED.
  const backends = new Backends(backendsConfig(config), app.log)
  await backends.warmUp()
  const loopRule = new QueueDelayRule(
    { targetMs: config.shedLoopTargetMs, intervalMs: config.shedLoopIntervalMs }, performance.now()
  )
  // The loop's delay is read by the shedding (when on) and by CPU_JOBS=auto (which places nothing
  // inline on a late loop, whether or not anything is shed).
  // Refusing on the loop only where it frees the loop (RefusalPayoff), judged by its active time.
  const loopActiveMs = (): number => performance.eventLoopUtilization().active
  const loopDelay = loopRule.enabled || config.cpuJobs === 'auto'
    ? new LoopDelay(loopRule, () => performance.now(), undefined, loopActiveMs)
    : undefined
  // Measured from when the app is ready: the turns spent building it (modules, routes, files) are
  // not requests waiting, and counted they left a cluster worker shedding its first requests.
  app.addHook('onReady', async () => { loopDelay?.start() })
  const runner = new JobRunner(registry, config, (event) => {
    metrics.jobSettled(event)
    sampler.record(event)
  }, backends, loopDelay)
  await runner.start()
  const websockets = new WsConnections()
  // Made after the runner (it reads its pool); the runner tells it of jobs only once they run.
  const metrics = new ServerMetrics({
    pool: runner.pool, websockets, auto: runner.auto, loop: loopRule.enabled ? loopDelay : undefined
  })
  // The dashboard's figures: counted only while a page is open (src/dashboard/sample.ts).
  const sampler = new ProcessSampler({ pool: runner.pool, websockets, auto: runner.auto, worker: cluster.worker?.id })
  const feed = cluster.isWorker ? workerFeed(sampler, config) : localFeed(sampler, config)
  app.decorate('jobs', runner)
  app.decorate('websockets', websockets)
  app.addHook('onClose', async () => {
    loopDelay?.stop()
    await runner.close()
    await backends.close()
    metrics.close()
    sampler.stop()
  })

  let closing = false
  app.addHook('preClose', async () => { closing = true })
  // What is refused before it becomes a job, an HTTP request or a WebSocket frame, by its code.
  const refused = (code: string): void => {
    sampler.refused(code)
    metrics.requestRefused(code)
  }
  installRequestHooks(app, {
    // CPU_JOBS=auto reads the loop's delay with shedding off too; admission only when it sheds.
    loop: loopRule.enabled ? loopDelay : undefined,
    authToken: config.authToken,
    closing: () => closing,
    shed: refused
  })
  // One line per request, at debug only (the hook is not even there at info): load runs stay quiet.
  if (config.logLevel === 'debug' || config.logLevel === 'trace') {
    app.addHook('onResponse', (request, reply, done) => {
      request.log.debug({ method: request.method, url: request.url, statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime * 1000) / 1000 }, 'request')
      done()
    })
  }

  app.setErrorHandler(async (err, request, reply) => {
    const body = toErrorBody(err)
    // A failed task or a bug is worth an error line; timeouts, shed load and bad input are the
    // server working as designed, and at load-test rates would drown the log.
    if (body.code === 'TASK_FAILED' || body.code === 'INTERNAL_ERROR') request.log.error({ err, code: body.code }, body.message)
    else request.log.debug({ code: body.code, message: body.message }, 'job refused')
    if (body.code === 'OVERLOADED' || body.code === 'BACKEND_UNAVAILABLE') reply.header('retry-after', String(RETRY_AFTER_S))
    if (body.code === 'OVERLOADED') {
      const holdMs = refusalHoldMs(request, config.shedIntervalMs)
      if (holdMs > 0) await sleep(holdMs)
    }
    return reply.code(body.statusCode).send(body)
  })
  app.setNotFoundHandler(async (request, reply) => {
    const body = toErrorBody(new errors.NOT_FOUND(request.method, request.url.split('?')[0]))
    return reply.code(404).send(body)
  })

  await app.register(jobRoutes, { runner })
  await app.register(taskRoutes, { registry, auto: runner.auto })
  await app.register(healthRoutes, { config })
  await app.register(wsRoutes, { runner, config, connections: websockets, refused })
  await app.register(metricsRoutes, { metrics })
  await app.register(dashboardRoutes, { feed })
  await app.register(userRoutes, { backends })
  await app.register(productRoutes, { backends, upstreamUrl: config.upstreamUrl })
  return app
}
