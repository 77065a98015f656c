import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { processTree } from '../../bench/lib/proc.js'
import { projectRoot } from '../../src/paths.js'
import { alive, childEnv, onNewConnection, startServer, waitFor, type RunningServer } from '../helpers.js'
import { listeningAddress, NO_SHEDDING, serverFile } from '../support/server-process.js'

type Started = Pick<RunningServer, 'url' | 'proc' | 'logs'>

const started: Started[] = []
afterEach(async () => {
  // The whole group, even where its first process has exited: npm can exit and leave its script's.
  for (const s of started.splice(0)) {
    try {
      process.kill(-(s.proc.pid as number), 'SIGKILL')
    } catch {} // nothing left in it
  }
})

/** A server in a process group of its own, as a terminal or systemd starts it. */
async function startGroup (env: Record<string, string>): Promise<RunningServer> {
  // Not shed: 20 connections opened at once on a busy machine could be refused at the door, and
  // these tests are about what happens to jobs already accepted.
  const server = await startServer({ ...NO_SHEDDING, ...env }, 20_000, serverFile, [], true)
  started.push(server)
  return server
}

const JOBS = 20
const JOB = JSON.stringify({ task: 'http', input: { delayMs: 1500 } })

/**
 * JOBS jobs of 1.5 s that call the delay service, each on a connection of its own; `signal` goes
 * to the whole process group once every job has been accepted (or to `server.proc` alone, with
 * `toGroup` false). Every job must be answered (the delay service outlives the drain) and the
 * server exit 0.
 */
async function signalWithJobsInFlight (server: Started, signal: NodeJS.Signals, toGroup = true): Promise<void> {
  const answers = Array.from({ length: JOBS }, async () => await onNewConnection(server.url, 'POST', '/jobs', JOB))
  await new Promise((resolve) => setTimeout(resolve, 800))
  const exited = once(server.proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  process.kill(toGroup ? -(server.proc.pid as number) : server.proc.pid as number, signal)
  const results = await Promise.allSettled(answers)
  const statuses = results.map((r) => r.status === 'fulfilled' ? (r.value.status === 200 ? 200 : r.value.text) : (r.reason as Error).message)
  expect(statuses).toEqual(Array(JOBS).fill(200))
  const [code] = await exited
  expect(code).toBe(0)
  // Each worker heard the signal twice (the terminal's and the primary's) and drained once.
  const exits = server.logs.filter((l) => l.msg === 'worker exited')
  expect(exits.map((l) => l.code)).toEqual(exits.map(() => 0))
  expect(server.logs.some((l) => l.msg === 'second signal: exiting without draining')).toBe(false)
}

describe('a signal to the whole process group', () => {
  it('SIGTERM drains a cluster like a SIGTERM to the primary: every job answered, exit 0', async () => {
    await signalWithJobsInFlight(await startGroup({ MODE: 'hybrid', PROCESSES: '2' }), 'SIGTERM')
  })

  it('SIGINT (Ctrl-C) drains a cluster likewise', async () => {
    await signalWithJobsInFlight(await startGroup({ MODE: 'hybrid', PROCESSES: '2' }), 'SIGINT')
  })

  it('SIGTERM drains a one-process server likewise, its delay service last', async () => {
    await signalWithJobsInFlight(await startGroup({ MODE: 'event-loop' }), 'SIGTERM')
  })

  it('SIGHUP restarts a cluster\'s workers one by one and it goes on serving', async () => {
    const server = await startGroup({ MODE: 'hybrid', PROCESSES: '2' })
    process.kill(-(server.proc.pid as number), 'SIGHUP')
    await waitFor(() => server.logs.some((l) => l.msg === 'rolling restart done'), 15_000)
    expect((await onNewConnection(server.url, 'POST', '/jobs', JOB)).status).toBe(200)
    expect(server.proc.exitCode).toBe(null)
    expect(await server.stop()).toBe(0)
  })
})

describe('SIGHUP to a one-process server', () => {
  it.each(['event-loop', 'threads'])('%s: logs why it does not restart, and goes on serving', async (mode) => {
    const server = await startGroup({ MODE: mode })
    process.kill(-(server.proc.pid as number), 'SIGHUP')
    await waitFor(() => server.logs.some((l) => String(l.msg).startsWith('SIGHUP: a one-process server')))
    expect((await onNewConnection(server.url, 'GET', '/health')).status).toBe(200)
    expect((await onNewConnection(server.url, 'POST', '/jobs', JOB)).status).toBe(200)
    expect(await server.stop()).toBe(0)
  })
})

describe('a signal to `npm start`', () => {
  it('reaches the server: SIGTERM to npm alone drains it, every job answered, exit 0, nothing left', async () => {
    // The README's command, in a process group of its own; npm passes the signal to its script,
    // which execs the server (package.json): a shell in between would die of it and leave the server.
    const npm = spawn('npm', ['start', '--silent'], {
      cwd: projectRoot,
      env: childEnv({ ...NO_SHEDDING, PORT: '0', LOG_LEVEL: 'info', MODE: 'hybrid', PROCESSES: '2' }),
      stdio: ['ignore', 'pipe', 'ignore'],
      detached: true
    })
    const logs: Array<Record<string, unknown>> = []
    const server = { url: await listeningAddress(npm, logs, 30_000), proc: npm, logs }
    started.push(server)
    const tree = await processTree(npm.pid as number)
    expect(tree.length).toBeGreaterThanOrEqual(5) // npm, the primary, two workers, the delay service
    await signalWithJobsInFlight(server, 'SIGTERM', false)
    await waitFor(() => !tree.some(alive), 10_000)
  }, 60_000)
})
