import { describe, expect, it } from 'vitest'
import { judgeGrowth, runSoak, type ProcessSample } from '../../bench/soak/run.js'

describe('the soak', () => {
  it('judges growth by the slope of RSS past the warm-up, per process', () => {
    const at = (atS: number, pid: number, mib: number): ProcessSample =>
      ({ atS, pid, role: 'worker', rssBytes: mib * 2 ** 20, fds: 20 })
    const flat = [0, 60, 120, 180, 240].map((s) => at(s, 1, 100))
    const growing = [0, 60, 120, 180, 240].map((s, i) => at(s, 2, 100 + 3 * i))
    const young = [at(180, 3, 50), at(240, 3, 80)]
    const { growth, unjudged } = judgeGrowth([...flat, ...growing, ...young], 60)
    expect(growth).toEqual([
      { pid: 1, role: 'worker', samples: 4, fromS: 60, toS: 240, mbPerMin: 0 },
      { pid: 2, role: 'worker', samples: 4, fromS: 60, toS: 240, mbPerMin: 3 }
    ])
    expect(unjudged).toEqual([{ pid: 3, role: 'worker', samples: 2 }])
  })

  it('runs short on a real server: workers killed and the cluster rolled under mixed load, every job answered', async () => {
    const report = await runSoak({
      minutes: 0.6,
      sampleEveryS: 4,
      killEveryS: 12,
      hupEveryS: 20,
      warmS: 8,
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
    // lands on the others, or bad input), but for the few the bound below allows.
    const codes = new Set(report.streams.flatMap((s) => Object.keys(s.report.errors)))
    expect([...codes].filter((c) => !['OVERLOADED', 'BAD_INPUT'].includes(c) && !c.startsWith('CLIENT_'))).toEqual([])
    expect(ok).toBeGreaterThan(sent * 0.7)
    // Bad input is 1% of the mix, and is answered as such.
    expect(report.streams.reduce((a, s) => a + (s.report.errors.BAD_INPUT ?? 0), 0)).toBeGreaterThan(0)
    // The full run's criterion is none lost; a short run with a kill every 12 s allows a job in a
    // thousand to meet a second kill or a replacement still starting on its one retry.
    const outcomes = JSON.stringify(report.streams.map(({ name, report: l }) =>
      ({ [name]: { ...l.errors, timedOut: l.timedOut, abandoned: l.abandoned } })))
    expect(report.lost + report.timedOut + report.abandoned, outcomes).toBeLessThanOrEqual(Math.ceil(sent / 1000))
    expect(report.serverLog.filter((l) => l.msg === 'worker died while serving; replacing it').length).toBeGreaterThanOrEqual(2)
  }, 240_000)
})
