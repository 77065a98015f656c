import type { FastifyInstance } from 'fastify'
import { buildApp } from '../app.js'
import type { Config } from '../config.js'

/** Builds the app and listens: the one place where a process starts serving HTTP. */
export async function serve (config: Config): Promise<{ app: FastifyInstance, address: string }> {
  const app = await buildApp(config)
  try {
    const address = await app.listen({ port: config.port, host: config.host })
    return { app, address }
  } catch (err) {
    await app.close()
    throw err
  }
}

/** How long a drain may take past the longest a job may run, before connections are cut. */
const DRAIN_MARGIN_MS = 2_000

/**
 * Drains on the first signal: stop accepting, answer what is in flight, close the pool, run
 * `close`, exit 0. No job runs past JOB_TIMEOUT_MS, so a drain still going after that (and a
 * margin) is stuck on a client: its connections are cut.
 *
 * A second signal exits 1 at once when `secondForces`: the one-process server, whose user may
 * want out now. A cluster worker passes false: a signal sent to the whole process group (Ctrl-C,
 * systemd's default stop) reaches it once from the terminal and once more relayed by the primary,
 * and that second one is not a user's "now"; the primary, which hears the user's second signal
 * itself, forces its workers with SIGKILL.
 */
export function closeOnSignals (
  app: FastifyInstance,
  config: Pick<Config, 'jobTimeoutMs'>,
  signals: readonly NodeJS.Signals[],
  close: () => Promise<void>,
  secondForces = true
): void {
  let closing = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) {
      if (!secondForces) {
        app.log.info({ signal }, 'already draining')
        return
      }
      app.log.warn({ signal }, 'second signal: exiting without draining')
      process.exit(1)
    }
    closing = true
    app.log.info({ signal }, 'draining')
    // Node closes the connections idle when the server closes; one still busy then (its answer was
    // written before the drain began, so without `connection: close`) goes idle later and would
    // otherwise be held until KEEP_ALIVE_TIMEOUT_MS. Those are closed as they go idle.
    setInterval(() => app.server.closeIdleConnections(), 100).unref()
    setTimeout(() => {
      // Stuck on a client: cut what is left, WebSockets included (the HTTP server no longer holds
      // those), and if even that does not let the close finish, leave without it.
      app.log.warn('drain deadline: cutting the connections still open')
      app.server.closeAllConnections()
      app.websockets.terminate()
      setTimeout(() => process.exit(1), DRAIN_MARGIN_MS).unref()
    }, config.jobTimeoutMs + DRAIN_MARGIN_MS).unref()
    close().then(() => process.exit(0), (err: unknown) => {
      process.stderr.write(`shutdown failed: ${String(err)}\n`)
      process.exit(1)
    })
  }
  for (const signal of signals) process.on(signal, onSignal)
}
