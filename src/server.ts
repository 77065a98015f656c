/**
 * The entry: reads the configuration, then runs as the cluster primary, as a cluster worker, or,
 * with PROCESSES=1, as the one process that serves (no fork, so profilers see the server).
 */
import cluster from 'node:cluster'
import { ConfigError, parseConfig, type Config } from './config.js'
import { runPrimary } from './cluster/primary.js'
import { closeOnSignals, serve } from './cluster/serve.js'
import { createLogger, describe } from './log.js'
import { startDelayService } from './upstream/spawn.js'

function readConfig (): Config {
  try {
    return parseConfig()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`Invalid configuration: ${err.message}\n`)
    process.exit(2)
  }
}

async function runWorker (config: Config): Promise<void> {
  const { app } = await serve(config)
  // The primary coordinates stops and restarts: what a signal to the whole process group (Ctrl-C's
  // SIGINT, a closed terminal's SIGHUP) asks of it, it asks of each worker in turn, with SIGTERM.
  process.on('SIGINT', () => {})
  process.on('SIGHUP', () => {})
  closeOnSignals(app, config, ['SIGTERM'], () => app.close(), false)
}

async function runSingle (config: Config): Promise<void> {
  const upstream = config.upstreamUrl === undefined ? await startDelayService() : undefined
  const effective: Config = Object.freeze({ ...config, upstreamUrl: upstream?.url ?? config.upstreamUrl })
  try {
    const { app, address } = await serve(effective)
    app.log.info({ ...describe(effective, address), pid: process.pid }, 'server listening')
    closeOnSignals(app, config, ['SIGTERM', 'SIGINT'], async () => {
      await app.close()
      await upstream?.stop()
    })
    // One process has no workers to replace one by one, and SIGHUP must not end it (Node's default).
    process.on('SIGHUP', () => {
      app.log.warn('SIGHUP: a one-process server has no workers to replace; it goes on serving (rolling restarts need PROCESSES >= 2)')
    })
  } catch (err) {
    await upstream?.stop()
    throw err
  }
}

const config = readConfig()
const runCluster = async (c: Config): Promise<void> => await runPrimary(c, createLogger(c))
const run = cluster.isWorker ? runWorker : config.processes === 1 ? runSingle : runCluster
run(config).catch((err: unknown) => {
  createLogger(config).fatal({ err }, 'server failed to start')
  process.exit(1)
})
