import { describe, expect, it } from 'vitest'
import {
  BACKOFF_PAUSES_MS, drainUnderLoad, killLoop, postOnNewConnection, rollingRestartUnderLoad, workerGaps,
  type KillFigures
} from '../../bench/chaos/scenarios.js'
import { startServer, waitFor } from '../helpers.js'

/** What a kill loop's failure message shows: its tally, and how long no worker was alive. */
const seen = ({ tally, noWorkerMs, noWorkerStretches, replacementMs }: KillFigures): string =>
  JSON.stringify({ ...tally, pids: undefined, noWorkerMs, noWorkerStretches, replacementMs })

// The scenarios of `npm run chaos`, smaller: each starts a real cluster and stops it.
describe('process faults under load', () => {
  it('SIGKILL: each killed worker is replaced, and clients that retry once see no failure', async () => {
    // One kill every 3 s: each replacement is listening before the next kill (see npm run chaos for
    // faster). A replacement listens 1.5-1.9 s after its death here (`npm run chaos`), later on a
    // busy machine: at one kill every 1.5 s a fresh-clone CI run of 2026-12-06 saw 9 jobs fail their
    // one retry, which a stretch with no worker alive (a replacement not listening yet at the next
    // kill) would explain; the figures are in the failure's message.
    const figures = await killLoop(3, 3000, 6)
    expect(figures.replaced).toBe(3)
    expect(figures.tally.requests).toBeGreaterThan(50)
    expect(figures.tally.failed, seen(figures)).toBe(0)
    expect(figures.withRetryRate).toBe(1)
    expect(figures.servedAfter).toBe(true)
  }, 60_000)

  it('SIGKILL faster than replacement: nothing accepted is lost for good, and retries spread over a start answer every job', async () => {
    // One kill every 400 ms, where a replacement takes about a second to listen: there are
    // stretches with no worker at all, when connections are refused. On a machine busy with other
    // work a start takes longer (CI once saw 2 of 606 refused past the 3.5 s of BACKOFF_PAUSES_MS):
    // this client's last pause is longer, as a client's backoff would grow.
    const figures = await killLoop(4, 400, 6, [...BACKOFF_PAUSES_MS, 4000])
    expect(figures.replaced).toBe(4)
    expect(figures.tally.requests).toBeGreaterThan(50)
    expect(figures.tally.failed, seen(figures)).toBe(0)
    expect(figures.withRetryRate).toBe(1)
    expect(figures.servedAfter).toBe(true)
  }, 60_000)

  it('reads from the primary\'s log how long no worker was alive, and how long replacements took', () => {
    const log = (time: number, msg: string): Record<string, unknown> => ({ time, msg })
    const started = 'worker started'
    const died = 'worker died while serving; replacing it'
    expect(workerGaps([
      log(0, started), log(10, started),
      log(100, died), log(300, died), // none alive from 300...
      log(1100, started), // ...to 1100: 800 ms; this one replaces the death at 100 (1000 ms)
      log(1200, died), // none again from 1200...
      log(1400, started) // ...to 1400; replaces the death at 300 (1100 ms)
    ], 2)).toEqual({ noWorkerMs: 1000, noWorkerStretches: 2, replacementMs: { median: 1100, max: 1100 } })
  })

  it('SIGHUP: every worker replaced under load with no request refused or lost', async () => {
    const figures = await rollingRestartUnderLoad(6)
    expect(figures.tally.requests).toBeGreaterThan(50)
    expect(figures.tally).toMatchObject({ refused: 0, lost: 0, errorStatus: 0, failed: 0 })
    expect(figures.servedAfter).toBe(true)
  }, 60_000)

  it('SIGTERM: every job accepted before and during the drain is answered, then exit 0', async () => {
    const figures = await drainUnderLoad(400, 12)
    expect(figures.exitCode).toBe(0)
    expect(figures.tally.okFirstTry).toBeGreaterThanOrEqual(12)
    // Refused connections (after the listener closed) are what a stopped server does; none is lost.
    expect(figures.tally).toMatchObject({ lost: 0, errorStatus: 0 })
    expect(figures.tally.failed).toBe(figures.tally.refused)
  }, 60_000)

  it('every worker killed at once: replaced, on the same port (also with PORT=0)', async () => {
    const server = await startServer({ MODE: 'processes', PROCESSES: '2' })
    try {
      const body = JSON.stringify({ task: 'fib', input: { n: 5 } })
      const pids = new Set<number>()
      await waitFor(async () => {
        const answer = await postOnNewConnection(server.url, body, 2_000)
        if (answer.pid !== undefined) pids.add(answer.pid)
        return pids.size === 2
      }, 10_000, 10)
      for (const pid of pids) process.kill(pid, 'SIGKILL')
      await waitFor(async () => server.logs.filter((l) => l.msg === 'worker started').length === 4, 15_000, 50)
      const after = await postOnNewConnection(server.url, body, 5_000)
      expect(after.status).toBe(200)
      expect(pids.has(after.pid!)).toBe(false)
    } finally {
      expect(await server.stop()).toBe(0)
    }
  }, 30_000)
})
