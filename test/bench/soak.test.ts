import { describe, expect, it } from 'vitest'
import { judgeGrowth, runSoak, type ProcessSample } from '../../bench/soak/run.js'

describe('the soak', () => {
  it('judges growth by the slope of RSS past the warm-up, with its noise, per process and for the workers as a class', () => {
    // A sample a minute; cpu: the CPU seconds used per minute (a core is 60).
    const at = (min: number, pid: number, mib: number, cpuPerMin = 30, role: ProcessSample['role'] = 'worker'): ProcessSample =>
      ({ atS: min * 60, pid, role, rssBytes: mib * 2 ** 20, cpuS: cpuPerMin * min, fds: 20 })
    const minutes = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)
    const primary = minutes(0, 12).map((m) => at(m, 1, 70 + 0.1 * m, 2, 'primary'))
    const leaking = minutes(0, 12).map((m) => at(m, 2, 140 + 3 * m))
    // A replacement idle at its start-up size, then at its working size once load arrives at minute 6.
    const idle = minutes(1, 12).map((m) => ({ ...at(m, 3, m < 6 ? 91 : 145 + m % 2), cpuS: m < 6 ? 1 : (m - 5) * 30 }))
    const neverLoaded = minutes(1, 12).map((m) => at(m, 4, 91, 0.5))
    const noisy = minutes(3, 10).map((m) => at(m, 5, [150, 190, 140, 175, 145, 195, 150, 160][m - 3] as number))
    const { growth, unjudged } = judgeGrowth([...primary, ...leaking, ...idle, ...neverLoaded, ...noisy], 120, 60)
    const by = new Map(growth.map((g) => [g.pid, g]))
    expect(by.get(1)).toMatchObject({ role: 'primary', samples: 11, fromS: 120, toS: 720, mbPerMin: 0.1, verdict: 'holds' })
    expect(by.get(2)).toMatchObject({ mbPerMin: 3, noise: 0, verdict: 'grows' })
    // Judged from a minute after its load began: the step from 91 to 145 MiB is not growth.
    expect(by.get(3)).toMatchObject({ fromS: 420, toS: 720, verdict: 'holds' })
    expect(by.get(3)?.mbPerMin).toBeLessThan(1)
    // 6 samples swinging by 50 MiB: their slope cannot say whether it is over 1 MB/min.
    expect(by.get(5)).toMatchObject({ samples: 6, verdict: 'cannot tell' })
    expect(by.get(5)?.noise).toBeGreaterThan(5)
    expect(by.get(0)).toMatchObject({ role: 'workers', samples: 11 + 6 + 6 })
    expect(unjudged).toEqual([{ pid: 4, role: 'worker', samples: 12, why: 'never carried load' }])
  })

  it('runs short on a real server: workers killed and the cluster rolled under mixed load, every job answered', async () => {
    const report = await runSoak({
      minutes: 0.6,
      sampleEveryS: 4,
      killEveryS: 12,
      hupEveryS: 20,
      warmS: 8,
      settleS: 4,
      loadShare: 0.5,
      capacityS: 2,
      backends: true
    })
    expect(report.events.filter((e) => e.what === 'SIGKILL a worker').length).toBeGreaterThanOrEqual(2)
    expect(report.events.some((e) => e.what === 'SIGHUP')).toBe(true)
    const roles = new Set(report.samples.map((s) => s.role))
    expect([...roles].sort()).toEqual(['delay service', 'primary', 'worker'])
    const workers = report.samples.filter((s) => s.role === 'worker')
    expect(workers.every((s) => s.fds > 0 && s.rssBytes > 0)).toBe(true)
    // Heap and handles come from /metrics, which a sample taken while a worker is being replaced may miss.
    const withHeap = workers.filter((s) => s.heapUsedBytes !== undefined && s.activeHandles !== undefined)
    expect(withHeap.length).toBeGreaterThan(workers.length / 2)
    const sent = report.streams.reduce((a, s) => a + s.report.sent, 0)
    const ok = report.streams.reduce((a, s) => a + s.report.ok, 0)
    expect(sent).toBeGreaterThan(100)
    // Every job is answered: done, or refused with a code (shed while a killed worker's share
    // lands on the others; BACKEND_UNAVAILABLE for a user-service job that a worker's PostgreSQL
    // pool or Redis connection could not take in time, as documented; bad input), but for the few
    // the bound below allows.
    const codes = new Set(report.streams.flatMap((s) => Object.keys(s.report.errors)))
    const expected = ['OVERLOADED', 'BACKEND_UNAVAILABLE', 'BAD_INPUT']
    expect([...codes].filter((c) => !expected.includes(c) && !c.startsWith('CLIENT_'))).toEqual([])
    expect(ok).toBeGreaterThan(sent * 0.7)
    // Bad input is 1% of the mix, and is answered as such.
    expect(report.streams.reduce((a, s) => a + (s.report.errors.BAD_INPUT ?? 0), 0)).toBeGreaterThan(0)
    // The full run's criterion is none lost; a short run with a kill every 12 s allows a job in a
    // thousand to meet a second kill or a replacement still starting on its one retry.
    const outcomes = JSON.stringify(report.streams.map(({ name, report: l }) =>
      ({ [name]: { ...l.errors, timedOut: l.timedOut, abandoned: l.abandoned } })))
    expect(report.lost + report.timedOut + report.abandoned, outcomes).toBeLessThanOrEqual(Math.ceil(sent / 1000))
    expect(report.serverLog.filter((l) => l.msg === 'worker died while serving; replacing it').length).toBeGreaterThanOrEqual(2)
    // And it stops as a user's server would: SIGTERM, drained, exit 0 (not killed 15 s later while
    // its workers waited on connections refused an upgrade while shedding, as before).
    expect(report.stop, report.stop.why).toMatchObject({ code: 0, signal: null })
  }, 240_000)
})
