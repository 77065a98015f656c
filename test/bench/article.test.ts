import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { findPython, runArticleTester } from '../../bench/article/tester.js'
import { startDelayService, type DelayServiceProcess } from '../../src/upstream/spawn.js'

// The article's own Python code, run for real against the delay service. .ci/run installs Python's
// aiohttp and requests (REQUIRE_PYTHON=1); elsewhere the test runs where they are installed.
const found = await findPython()
const runnable = 'bin' in found || process.env.REQUIRE_PYTHON === '1'

describe.runIf(runnable)('the article\'s PerformanceTester, in Python', () => {
  let upstream: DelayServiceProcess
  beforeAll(async () => { upstream = await startDelayService() })
  afterAll(async () => { await upstream.stop() })

  it('finds a python3 with aiohttp and requests', () => {
    expect(found).toMatchObject({ version: expect.stringMatching(/^Python 3\.\d+\.\d+, aiohttp \d/) })
  })

  it('times N calls of a delay at once, every call answered, 50 threads taking a round per 50 calls', async () => {
    if (!('bin' in found)) throw new Error(found.skipped)
    const delayS = 0.2
    const [few, many] = await runArticleTester(found.bin, `${upstream.url}/delay/${delayS * 1000}`, [5, 101])
    expect(few?.calls).toBe(5)
    expect(many?.calls).toBe(101)
    // Lower bounds only, set by the delay and not by this machine's speed: no call returns before
    // its delay, and 101 calls on 50 threads take three rounds of it; aiohttp as written opens 100
    // connections at most, so its 101st call waits for a second round.
    for (const seconds of Object.values(few?.seconds ?? {})) expect(seconds).toBeGreaterThanOrEqual(delayS)
    expect(many?.seconds.threadsS).toBeGreaterThanOrEqual(3 * delayS)
    expect(many?.seconds.asyncioS).toBeGreaterThanOrEqual(2 * delayS)
    expect(many?.seconds.asyncioUnlimitedS).toBeGreaterThanOrEqual(delayS)
  })

  it('fails when a call is not answered 200', async () => {
    if (!('bin' in found)) throw new Error(found.skipped)
    await expect(runArticleTester(found.bin, `${upstream.url}/delay/10?status=503`, [3])).rejects.toThrow(/not every call answered 200/)
  })
})
