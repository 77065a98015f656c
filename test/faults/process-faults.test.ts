import { describe, expect, it } from 'vitest'
import { drainUnderLoad, killLoop, rollingRestartUnderLoad } from '../../bench/chaos/scenarios.js'

// The scenarios of `npm run chaos`, smaller: each starts a real cluster and stops it.
describe('process faults under load', () => {
  it('SIGKILL: each killed worker is replaced, and clients that retry once see no failure', async () => {
    const figures = await killLoop(3, 700, 6)
    expect(figures.replaced).toBe(3)
    expect(figures.tally.requests).toBeGreaterThan(50)
    expect(figures.tally.failed).toBe(0)
    expect(figures.withRetryRate).toBe(1)
    expect(figures.servedAfter).toBe(true)
  }, 60_000)

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
})
