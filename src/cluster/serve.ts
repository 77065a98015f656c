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

/**
 * Stops on the first signal: stop accepting, answer what is in flight (each job is bounded by
 * JOB_TIMEOUT_MS), close the pool, then `after`. A second signal exits at once.
 */
export function closeOnSignals (signals: readonly NodeJS.Signals[], close: () => Promise<void>, onForced: () => void): void {
  let closing = false
  const onSignal = (): void => {
    if (closing) return onForced()
    closing = true
    close().then(() => process.exit(0), (err: unknown) => {
      process.stderr.write(`shutdown failed: ${String(err)}\n`)
      process.exit(1)
    })
  }
  for (const signal of signals) process.on(signal, onSignal)
}
