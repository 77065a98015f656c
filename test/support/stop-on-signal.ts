/**
 * What a bench has started and must not leave behind when a signal stops it. Node's default for
 * SIGINT, SIGTERM and SIGHUP ends the process at once, and the servers, PostgreSQL and Redis it had
 * started would go on running, orphaned, on their ports. A terminal's Ctrl-C reaches them as well
 * (they are in its process group), but `kill PID`, `timeout` and a CI runner's cancel signal the
 * bench alone.
 *
 * The helpers that start those processes (server-process.ts, worker-host.ts, backends.ts) register
 * how each is stopped; a bench's entry point calls exitCleanlyOnSignals() once. Where no entry point
 * has called it (a test file), registering does nothing more than keep a function in a set.
 */
import { constants } from 'node:os'

type Stop = () => Promise<unknown>

const running = new Set<Stop>()

/**
 * Remembers how to stop something just started, until the function it returns is called: once the
 * thing has stopped, by its owner or by itself.
 */
export function stopOnSignal (stop: Stop): () => void {
  running.add(stop)
  return () => { running.delete(stop) }
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * For a bench's entry point: on SIGINT, SIGTERM or SIGHUP, everything registered is stopped, all at
 * once (each helper's stop sends its own signal and ends with SIGKILL if it must), and then the
 * bench exits as the signal would have ended it, with 128 + the signal's number. A second signal
 * while they stop exits at once.
 */
export function exitCleanlyOnSignals (): void {
  let stopping = false
  const onSignal = (signal: typeof SIGNALS[number]): void => {
    const code = 128 + constants.signals[signal]
    if (stopping) process.exit(code)
    stopping = true
    process.stderr.write(`${signal}: stopping the ${running.size} processes this run started, then exiting\n`)
    void Promise.allSettled([...running].map(async (stop) => await stop())).then(() => process.exit(code))
  }
  for (const signal of SIGNALS) process.on(signal, onSignal)
}
