import cluster, { type Worker } from 'node:cluster'
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import { describe } from '../log.js'
import { startDelayService, type DelayServiceProcess } from '../upstream/spawn.js'
import { serveClusterMetrics } from '../metrics/cluster.js'
import { serveClusterDashboard } from '../dashboard/feed.js'

/** A port free on `host` now (the kernel's choice), for the workers to share. */
async function freePort (host: string): Promise<number> {
  const probe = createServer()
  probe.listen(0, host)
  await once(probe, 'listening')
  const { port } = probe.address() as AddressInfo
  probe.close()
  await once(probe, 'close')
  return port
}

/** Workers that die before listening, in a row, before the primary gives up. */
export const MAX_START_FAILURES = 5
const BACKOFF_BASE_MS = 250
const BACKOFF_MAX_MS = 5_000

/**
 * The cluster primary: starts the delay service, forks PROCESSES workers that share one listening
 * socket, and keeps them up.
 *
 * - A worker that dies after it was serving is replaced at once.
 * - A worker that dies before it listens counts as a start failure: the next fork waits 250 ms,
 *   500 ms, 1 s, ... (at most 5 s), and after MAX_START_FAILURES in a row the primary gives up and
 *   exits 1, rather than spin on a port in use or a broken build.
 * - SIGTERM or SIGINT: each worker drains and exits, then the delay service stops; exit 0. A second
 *   signal kills them all.
 * - SIGHUP: the workers are replaced one at a time, each new one listening before the old one
 *   drains, so the socket always has a worker behind it.
 */
export async function runPrimary (config: Config, log: Logger): Promise<void> {
  let upstream: DelayServiceProcess | undefined
  if (config.upstreamUrl === undefined) upstream = await startDelayService()
  const upstreamUrl = upstream?.url ?? config.upstreamUrl
  // node:cluster closes the shared listening socket when its last worker is gone, and the next
  // worker to listen opens it again: with PORT=0 that would be another port. So the primary picks
  // the free port once, and every worker, first or replacement, listens on that one.
  const port = config.port === 0 ? await freePort(config.host) : config.port
  const env = { UPSTREAM_URL: upstreamUrl, PORT: String(port) }

  const live = new Set<Worker>()
  const dashboard = serveClusterDashboard(() => live, config)
  const serving = new Set<Worker>()
  const retiring = new Set<Worker>()
  let startFailures = 0
  let stopping = false
  let restarting = false
  let announced = false

  // Fork only while fewer than PROCESSES workers are alive and not retiring, so that a replacement
  // that fails during a rolling restart is not replaced on top of the worker it was to replace.
  const wanted = (): boolean => !stopping && live.size - retiring.size < config.processes

  const fork = (): Worker => {
    const worker = cluster.fork(env)
    live.add(worker)
    // A message to a worker that has just died (the /metrics gathering asks every worker) fails
    // with ERR_IPC_CHANNEL_CLOSED as an 'error' event: unheard, it would end the primary and with
    // it the whole server. Its 'exit' follows, and is handled there.
    worker.on('error', (err) => { log.warn({ pid: worker.process.pid, err }, 'a message to a worker that has gone was dropped') })
    worker.once('listening', (address: { address: string, port: number }) => {
      serving.add(worker)
      startFailures = 0
      log.info({ pid: worker.process.pid }, 'worker started')
      dashboard.event({ at: Date.now(), what: 'started', worker: worker.id, pid: worker.process.pid ?? 0 })
      if (!announced && serving.size === config.processes) {
        announced = true
        const host = address.address.includes(':') ? `[${address.address}]` : address.address
        log.info({ ...describe({ ...config, upstreamUrl }, `http://${host}:${address.port}`), pid: process.pid }, 'server listening')
      }
    })
    worker.once('exit', (code, signal) => {
      live.delete(worker)
      const wasServing = serving.delete(worker)
      const planned = retiring.delete(worker) || stopping
      dashboard.event({ at: Date.now(), what: planned ? 'exited' : 'died', worker: worker.id, pid: worker.process.pid ?? 0, how: signal ?? `exit ${code}` })
      if (planned) {
        log.info({ pid: worker.process.pid, code, signal }, 'worker exited')
        return
      }
      if (wasServing) {
        log.warn({ pid: worker.process.pid, code, signal }, 'worker died while serving; replacing it')
        if (wanted()) fork()
        return
      }
      startFailures++
      if (startFailures >= MAX_START_FAILURES) {
        log.fatal({ pid: worker.process.pid, code, signal, failures: startFailures },
          `workers keep dying before they listen (${startFailures} in a row); giving up`)
        void stop(1)
        return
      }
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (startFailures - 1))
      log.warn({ pid: worker.process.pid, code, signal, failures: startFailures, retryInMs: delay }, 'worker died while starting')
      setTimeout(() => { if (wanted()) fork() }, delay).unref()
    })
    return worker
  }

  /**
   * Stops a worker without losing a connection: disconnect() first takes it out of the primary's
   * round-robin at once (a connection handed to a process as it exits is lost), then SIGTERM makes
   * it answer what it has in flight and exit.
   */
  const retire = async (w: Worker): Promise<void> => {
    if (w.isDead()) return
    const exited = once(w, 'exit')
    if (w.isConnected()) w.disconnect()
    w.process.kill('SIGTERM')
    await exited
  }

  const stop = async (exitCode: number): Promise<void> => {
    stopping = true
    await Promise.all([...live].map(async (w) => { await retire(w) }))
    await upstream?.stop()
    log.info({ exitCode }, 'server stopped')
    process.exit(exitCode)
  }

  const rollingRestart = async (): Promise<void> => {
    if (restarting || stopping) return
    restarting = true
    log.info({ workers: serving.size }, 'SIGHUP: replacing workers one at a time')
    try {
      for (const old of [...serving]) {
        const next = fork()
        const [event] = await Promise.race([once(next, 'listening').then(() => ['listening']), once(next, 'exit').then(() => ['exit'])])
        if (event !== 'listening' || stopping) {
          log.error('a replacement worker did not start; rolling restart stopped')
          return
        }
        retiring.add(old)
        await retire(old)
      }
      log.info({ workers: serving.size }, 'rolling restart done')
    } finally {
      restarting = false
    }
  }

  let signalled = false
  const onStopSignal = (): void => {
    if (!signalled) {
      signalled = true
      void stop(0)
      return
    }
    for (const w of live) w.process.kill('SIGKILL')
    void upstream?.stop()
    process.exit(1)
  }
  process.on('SIGTERM', onStopSignal)
  process.on('SIGINT', onStopSignal)
  process.on('SIGHUP', () => { void rollingRestart() })

  serveClusterMetrics()
  for (let i = 0; i < config.processes; i++) fork()
}
