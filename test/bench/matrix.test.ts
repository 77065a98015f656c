import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { Mode } from '../../src/config.js'
import type { CellResult, Measurement } from '../../bench/matrix/cell.js'
import { autoRoundTripMs, jobsByPlacement, loadOptions, scrape, warmJit, worstLoopDelayP99Ms } from '../../bench/matrix/cell.js'
import { startServer, type ServerProcess } from '../support/server-process.js'
import { cells, makePlan, MODELS, type CellSpec } from '../../bench/matrix/plan.js'
import { autoSweep, figures, markdown, shiftSection, warmupRounds, writeReport, type MatrixRun } from '../../bench/matrix/report.js'
import { runMatrix } from '../../bench/matrix/run.js'
import { roundOrder } from '../../bench/matrix/order.js'
import { fmt, fmtSpread, ratio, spread } from '../../bench/matrix/stats.js'
import { rowsAcrossRuns, said, stabilityMarkdown } from '../../bench/matrix/stability.js'
import { autoAgainstFixed, decide, holdsUpTo, JOBS_PER_S, verdict, type VerdictRow } from '../../bench/matrix/verdict.js'
import { measureShift, phases, type ShiftOptions, type ShiftResult, type ShiftRun } from '../../bench/matrix/shift.js'

const m = (jobsPerS: number, p99Ms: number, extra: Partial<Measurement> = {}): Measurement => ({
  jobsPerS,
  p50Ms: p99Ms / 2,
  p99Ms,
  errors: {},
  errorCount: 0,
  peakRssBytes: 100 * 2 ** 20,
  loopDelayP99Ms: 1,
  cpuS: 1,
  ...extra
})
const specs = cells(2, [10, 1000, 5000], ['ws'])
const spec = (id: string): CellSpec => specs.find((c) => c.id === id) as CellSpec
const result = (model: Mode, id: string, runs: Measurement[]): CellResult => (
  { model, cell: spec(id), startMs: 500, runs }
)

/**
 * A made-up run in which processes win CPU, the event loop wins high concurrency, and hybrid wins
 * mixed; `cpu` replaces models' CPU-row jobs/s.
 */
function syntheticRun (cpu: Partial<Record<Mode, number>> = {}, references?: MatrixRun['references']): MatrixRun {
  const results: CellResult[] = []
  const table: Record<Exclude<Mode, 'auto'>, {
    cpu: number,
    low: number,
    sweep: number[],
    alone: number,
    withCpu: number,
    cpuJobs: number
  }> = {
    'event-loop': { cpu: 100, low: 900, sweep: [40, 3900, 19_000], alone: 40, withCpu: 600, cpuJobs: 95 },
    threads: { cpu: 182, low: 600, sweep: [40, 200, 200], alone: 45, withCpu: 60, cpuJobs: 170 },
    processes: { cpu: 190, low: 910, sweep: [40, 3800, 15_000], alone: 40, withCpu: 200, cpuJobs: 185 },
    hybrid: { cpu: 185, low: 905, sweep: [40, 3850, 14_000], alone: 41, withCpu: 50, cpuJobs: 180 }
  }
  for (const model of Object.keys(table) as Array<keyof typeof table>) {
    const t = { ...table[model], cpu: cpu[model] ?? table[model].cpu }
    results.push(result(model, 'cpu', [m(t.cpu, 50), m(t.cpu * 0.98, 55), m(t.cpu * 1.02, 45)]))
    results.push(result(model, 'io-low', [m(t.low, 80)]))
    ;[10, 1000, 5000].forEach((n, i) => results.push(result(model, `io-sweep ws ${n}`, [m(t.sweep[i] as number, 300)])))
    results.push(result(model, 'mixed io alone', [m(100, t.alone)]))
    results.push(result(model, 'mixed io+cpu', [m(100, t.withCpu, { background: { jobsPerS: t.cpuJobs, p99Ms: 50, errorCount: 0 } })]))
  }
  return {
    measuredAt: '2026-11-25T00:00:00.000Z',
    durationS: 100,
    machine: { cpu: 'test cpu', cores: 2, memoryGiB: 24, node: 'v20.20.2', os: 'Linux' },
    plan: { ...makePlan('quick', 2), cells: specs },
    results,
    references,
    verdict: verdict(results, 2, 2)
  }
}

describe('roundOrder, the order of alternated servers round by round', () => {
  /** How often each server is measured right after each other one over `rounds` rounds in a row. */
  const after = (count: number, rounds: number): Map<string, number> => {
    const sequence = Array.from({ length: rounds }, (_, r) => roundOrder(count, r)).flat()
    const pairs = new Map<string, number>()
    for (let i = 1; i < sequence.length; i++) {
      const pair = `${sequence[i - 1]}>${sequence[i]}`
      pairs.set(pair, (pairs.get(pair) ?? 0) + 1)
    }
    return pairs
  }

  it('puts each of three servers right after each other one equally often, and never after itself', () => {
    for (let r = 0; r < 12; r++) expect([...roundOrder(3, r)].sort()).toEqual([0, 1, 2])
    // 12 rounds (the spin sweep): 35 transitions, the 36th would close the cycle.
    const pairs = after(3, 12)
    expect([...pairs.keys()].filter((p) => p[0] === p[2])).toEqual([])
    expect(pairs.size).toBe(6)
    expect([...pairs.values()].sort()).toEqual([5, 6, 6, 6, 6, 6])
    // Each server first, second and third in as many rounds.
    for (let place = 0; place < 3; place++) {
      const firsts = Array.from({ length: 6 }, (_, r) => roundOrder(3, r)[place])
      expect([...firsts].sort()).toEqual([0, 0, 1, 1, 2, 2])
    }
  })

  it('orders any other count as a balanced Latin square, each server first in turn', () => {
    for (const count of [2, 4, 5, 6, 7]) {
      const rounds = count % 2 === 0 ? count : 2 * count
      const within = new Map<string, number>()
      for (let r = 0; r < rounds; r++) {
        const order = roundOrder(count, r)
        expect([...order].sort()).toEqual(Array.from({ length: count }, (_, k) => k))
        if (r < count) expect(order[0]).toBe(r)
        for (let k = 1; k < count; k++) within.set(`${order[k - 1]}>${order[k]}`, (within.get(`${order[k - 1]}>${order[k]}`) ?? 0) + 1)
      }
      // Every ordered pair of two servers, once in n rounds (even n) or twice in 2n (odd n).
      expect(within.size).toBe(count * (count - 1))
      expect(new Set(within.values())).toEqual(new Set([count % 2 === 0 ? 1 : 2]))
    }
    expect(roundOrder(6, 0)).toEqual([0, 1, 5, 2, 4, 3])
    expect(roundOrder(5, 1)).toEqual([1, 2, 0, 3, 4])
    // A row of the matrix, three rounds: `auto` (the fifth model) follows different models.
    const before = (count: number, round: number, server: number): number | undefined => {
      const order = roundOrder(count, round)
      return order[order.indexOf(server) - 1]
    }
    expect([0, 1, 2].map((r) => before(5, r, 4))).toEqual([1, 3, 1])
    expect([0, 1, 2].map((r) => before(6, r, 4))).toEqual([2, 5, 1])
    expect(roundOrder(1, 3)).toEqual([0])
  })
})

describe('stats', () => {
  it('summarises repeated measurements with their spread', () => {
    expect(spread([3, 1, 2])).toEqual({ mean: 2, min: 1, max: 3, n: 3 })
    expect(spread([Number.NaN, 4])).toEqual({ mean: 4, min: 4, max: 4, n: 1 })
    expect(spread([]).n).toBe(0)
    expect(ratio(1, 0)).toBeNaN()
    expect(ratio(3, 4)).toBe(0.75)
  })

  it('formats for reading', () => {
    expect(fmt(12_345.6)).toBe('12,346')
    expect(fmt(12.34)).toBe('12.3')
    expect(fmt(0.12345)).toBe('0.123')
    expect(fmt(Number.NaN)).toBe('n/a')
    expect(fmtSpread(spread([100, 110, 120]))).toBe('110 (100-120)')
    expect(fmtSpread(spread([5]))).toBe('5')
  })
})

describe('verdict', () => {
  const run = syntheticRun()
  const row = (start: string) => run.verdict.find((v) => v.workload.startsWith(start))

  it('names the winner, the models within 5%, and whether the classic answer agrees', () => {
    expect(row('CPU-bound')).toMatchObject({ classic: 'processes', winner: 'processes', agrees: true })
    expect(row('CPU-bound')?.tied.sort()).toEqual(['hybrid', 'processes', 'threads'])
    expect(row('I/O-bound, 50')).toMatchObject({ classic: 'threads', winner: 'processes', agrees: false })
    expect(row('I/O-bound, over')).toMatchObject({ classic: 'event-loop', winner: 'event-loop', agrees: true })
    expect(row('I/O-bound, up to')).toMatchObject({ winner: 'event-loop', agrees: false })
  })

  it('names a winner only outside the runner-up\'s spread, and says why from the figures', () => {
    const cpu = row('CPU-bound')
    // processes 190 (186-194) and hybrid 185 (181-189) overlap; threads 182 is within 5%: a tie.
    expect(cpu).toMatchObject({ decided: false, winner: 'processes' })
    expect(cpu?.why).toContain('a tie on jobs/s')
    expect(cpu?.why).toMatch(/`processes` 190 \(186(\.\d)?-194\)/)
    // Generated from the cells' own CPU seconds (1 s over a 2 s window: 0.5 core, over 181-189 jobs/s
    // 2.7 ms a job) and loop delay.
    expect(cpu?.why).toContain('`hybrid` 0.5 of 2 cores busy (2.7 ms of CPU per job), loop delay p99 1 ms')
    // event-loop 19,000 at 5,000 in flight; the runner-up, processes, 15,000: apart.
    const over = row('I/O-bound, over')
    expect(over).toMatchObject({ decided: true, winner: 'event-loop', recommended: 'event-loop', tied: ['event-loop'] })
    expect(over?.why).toContain('`event-loop` 19,000 jobs/s against the runner-up\'s `processes` 15,000: 26.7% more, over 5% apart')
  })

  it('breaks a tie by p99, then by peak memory, and says which', () => {
    const cell = (model: Mode, runs: Measurement[]): CellResult => result(model, 'cpu', runs)
    const byP99 = decide([
      cell('processes', [m(200, 90), m(190, 90)]),
      cell('hybrid', [m(195, 40), m(185, 40)]),
      cell('threads', [m(100, 10)])
    ], JOBS_PER_S)
    expect(byP99).toMatchObject({ winner: 'processes', decided: false, tied: ['processes', 'hybrid'], recommended: 'hybrid' })
    expect(byP99?.reason).toContain('Recommended `hybrid` for the lowest p99 of them (40 ms; `processes` 90)')
    const byMemory = decide([
      cell('processes', [m(200, 40, { peakRssBytes: 300 * 2 ** 20 })]),
      cell('hybrid', [m(199, 41, { peakRssBytes: 200 * 2 ** 20 })])
    ], JOBS_PER_S)
    expect(byMemory).toMatchObject({ decided: false, recommended: 'hybrid' })
    expect(byMemory?.reason).toContain('the least peak memory')
    // Apart: 200 (195-205) against 150 (145-155).
    const apart = decide([cell('threads', [m(195, 9), m(205, 9)]), cell('hybrid', [m(145, 1), m(155, 1)])], JOBS_PER_S)
    expect(apart).toMatchObject({ winner: 'threads', decided: true, recommended: 'threads' })
  })

  it('judges the mixed row by I/O p99 among the models that keep CPU throughput', () => {
    // threads has a good p99 but is within 80% of the best CPU rate; event-loop is not, whatever its p99.
    expect(row('Mixed')).toMatchObject({ classic: 'hybrid', winner: 'hybrid', recommended: 'hybrid', agrees: true })
  })

  it('leaves out of the mixed row a model that does not answer the I/O offered, whatever its CPU rate', () => {
    const starved = syntheticRun()
    const cell = starved.results.find((r) => r.model === 'processes' && r.cell.id === 'mixed io+cpu') as CellResult
    // processes answers 40 of the 100 I/O jobs/s offered, with the best p99 of those it answers, and
    // the most CPU jobs by far: under the CPU rule alone it would have left every other model out.
    cell.runs = [m(40, 10, { background: { jobsPerS: 300, p99Ms: 50, errorCount: 0 } })]
    const mixed = verdict(starved.results, 2, 2).find((v) => v.workload.startsWith('Mixed'))
    expect(mixed).toMatchObject({ winner: 'hybrid', recommended: 'hybrid' })
    expect(mixed?.why).toContain('Left out for answering under 90% of the 100 I/O jobs/s offered: `processes` 40.')
    expect(mixed?.why).toContain('Left out for their CPU jobs/s (under 80% of the best of the rest, 180): `event-loop` 95.')
  })

  it('finds how far each model holds up in the sweep', () => {
    expect(holdsUpTo(run.results, 'event-loop', 'ws')).toBe(5000)
    expect(holdsUpTo(run.results, 'hybrid', 'ws')).toBe(1000)
    expect(holdsUpTo(run.results, 'threads', 'ws')).toBe(10)
  })
})

describe('auto against the fixed models', () => {
  it('compares auto with the best and the worst fixed model of each cell, the mixed row on CPU jobs/s and I/O p99', () => {
    const run = syntheticRun()
    const withAuto = [
      ...run.results,
      result('auto', 'cpu', [m(184, 50), m(180, 50), m(188, 50)]),
      result('auto', 'io-low', [m(500, 80)]),
      result('auto', 'mixed io+cpu', [m(100, 45, { background: { jobsPerS: 178, p99Ms: 50, errorCount: 0 } })])
    ]
    const cells = autoAgainstFixed(withAuto)
    expect(cells.map((c) => `${c.cell}: ${c.measure}`)).toEqual([
      'cpu: jobs/s', 'io-low: jobs/s', 'mixed io+cpu: CPU jobs/s, of the models that answer the I/O', 'mixed io+cpu: I/O p99 ms, of the models that serve both'
    ])
    // processes 190 is the best at CPU: auto 184 keeps 96.8% of it.
    expect(cells[0]).toMatchObject({ bestModel: 'processes', best: 190, auto: 184, worst: false })
    expect(cells[0]?.ratio).toBeCloseTo(184 / 190, 5)
    // 500 jobs/s against threads' 600, the worst fixed model, and more than 5% under it: the worst.
    expect(cells[1]).toMatchObject({ bestModel: 'processes', worst: true })
    // The mixed row: processes' CPU 185 is the best; of those that keep 80% of it (threads, processes,
    // hybrid; not event-loop's 95), hybrid's I/O p99 of 50 ms is the best, and auto's 45 is lower still.
    expect(cells[2]).toMatchObject({ bestModel: 'processes', best: 185, auto: 178 })
    expect(cells[3]).toMatchObject({ bestModel: 'hybrid', best: 50, auto: 45, worst: false })
    expect(cells[3]?.ratio).toBeCloseTo(50 / 45, 5)
    const f = figures({ ...run, results: withAuto })
    expect(f.find((x) => x.name.startsWith('auto vs the best fixed model'))).toMatchObject({ value: 500 / 910, met: false })
    expect(f.find((x) => x.name === 'cells in which auto was the worst model')).toMatchObject({ value: 1, met: false })
  })

  const options: ShiftOptions = {
    lowMs: 0.05, highMs: 2, phaseMs: 1000, settleMs: 200, binMs: 100, connections: 4, repeats: 1, threads: 2
  }
  const phase = (v: number, n = 10): number[] => new Array<number>(n).fill(v)
  // The fixed placements over three phases of 10 bins: inline is best when cheap (8,000 against
  // 5,000), the pool when costly (700 against 400).
  const fixed = {
    inline: [...phase(8000), ...phase(400), ...phase(8000)],
    pool: [...phase(5000), ...phase(700), ...phase(5000)]
  }

  it('times how long auto takes to follow each shift of a cost, from bins of answers', () => {
    // auto: right at once in the first phase, 3 bins late after the first shift, 1 after the second.
    const run: ShiftRun = {
      binsPerS: {
        ...fixed,
        auto: [...phase(7900), 400, 400, 400, ...phase(690, 7), 5000, ...phase(7950, 9)]
      },
      autoPoolShare: [...phase(0.02), 0, 0.5, 0.95, ...phase(1, 7), 0.5, ...phase(0.03, 9)],
      errors: 0
    }
    const [low, high, again] = phases([run], options)
    expect(low).toMatchObject({ name: 'low', best: 'inline', followMs: 0 })
    expect(high).toMatchObject({ name: 'high', best: 'pool', followMs: 300, placedMs: 200, settlesMs: 300 })
    expect(high?.autoRatio).toBeCloseTo((400 + 7 * 690) / 8 / 700, 5) // its settled phase: from the third bin
    // 300 ms windows: 5,000, 7,950, 7,950 is 6,967, under 95% of 8,000; from the second bin on, 7,950.
    expect(again).toMatchObject({ name: 'low again', best: 'inline', followMs: 100, placedMs: 100, settlesMs: 100 })
  })

  it('holds auto to the best placement of its own round, and takes the median of the rounds\' ratios', () => {
    const slower = (bins: number[], by: number): number[] => bins.map((b) => b * by)
    // Round 1 on a fast minute; round 2 on a minute 30% slower for every server. auto follows the
    // shift to the pool at once in both, at 0.97 of the pool in the first and 0.99 in the second.
    const round = (by: number, share: number): ShiftRun => ({
      binsPerS: {
        inline: slower(fixed.inline, by),
        pool: slower(fixed.pool, by),
        auto: slower([...phase(7900), ...phase(700 * share), ...phase(7900)], by)
      },
      autoPoolShare: [...phase(0.02), ...phase(1), ...phase(0.02)],
      errors: 0
    })
    const [, high, again] = phases([round(1, 0.97), round(0.7, 0.99)], options)
    // Against the mean of the two rounds' pool (595), round 2's auto (485) would never have followed.
    expect(high).toMatchObject({ best: 'pool', followMs: 0, placedMs: 0 })
    expect(high?.autoRatio).toBeCloseTo(0.98, 5)
    expect(again).toMatchObject({ best: 'inline', followMs: 0 })
    // A round in which auto stays under 95% of its own round's best never follows, however fast it
    // was: placed and settled at once, it served less than the pool with its jobs on the pool.
    const [, late] = phases([round(1, 0.9), round(0.7, 0.99)], options)
    expect(late).toMatchObject({ followMs: undefined, placedMs: 0, settlesMs: 0 })
    expect(late?.autoRatio).toBeCloseTo(0.945, 5)
  })

  it('keeps each round\'s time to follow, and the best placement\'s own time to settle as its floor', () => {
    // Round 1: auto follows the shift to the pool at once. Round 2: every server dips to half its
    // rate for 500 ms after that shift (the machine, not a placement), and auto never gets back to
    // 95% of the inline server after the shift back.
    const dip = (bins: number[]): number[] => bins.map((b, i) => i >= 10 && i < 15 ? b / 2 : b)
    const autoPoolShare = [...phase(0), ...phase(1), ...phase(0)]
    const runs: ShiftRun[] = [
      { binsPerS: { ...fixed, auto: [...phase(7900), ...phase(700), ...phase(7900)] }, autoPoolShare, errors: 0 },
      {
        binsPerS: {
          inline: dip(fixed.inline), pool: dip(fixed.pool), auto: dip([...phase(7900), ...phase(700), ...phase(7000)])
        },
        autoPoolShare,
        errors: 0
      }
    ]
    const [, high, again] = phases(runs, options)
    // 300 ms windows: the pool's second round is back at 95% of its settled 700 from the fifth bin.
    expect(high).toMatchObject({ followMs: 400, followEachMs: [0, 400], bestSettlesEachMs: [0, 400] })
    expect(again).toMatchObject({ followMs: undefined, followEachMs: [0, null], bestSettlesEachMs: [0, 0] })
    const shift: ShiftResult = { options, runs, phases: phases(runs, options) }
    const md = shiftSection(shift)
    expect(md).toContain('| 400 ms (0, 400) | 0 ms | ')
    expect(md).toContain('| **not within the phase** (0, never) |')
    expect(md).toMatch(/\| 400 ms \(0, 400\) \|$/m)
  })

  it('keeps the rounds before the counted ones apart, and says how auto followed in them', () => {
    // The round not counted: auto at 0.9 of the pool through the costly phase, following the shift
    // back in 100 ms; the counted round follows both shifts at once.
    const cold: ShiftRun = {
      binsPerS: { ...fixed, auto: [...phase(7900), ...phase(630), 5000, ...phase(7950, 9)] },
      autoPoolShare: [...phase(0.02), ...phase(1), ...phase(0.02)],
      errors: 0
    }
    const warm: ShiftRun = {
      binsPerS: { ...fixed, auto: [...phase(7900), ...phase(690), ...phase(7950)] },
      autoPoolShare: [...phase(0.02), ...phase(1), ...phase(0.02)],
      errors: 0
    }
    const counted = { options: { ...options, warmupRounds: 1 }, runs: [warm], phases: phases([warm], options) }
    expect(warmupRounds(counted)).toBe('')
    const shift = { ...counted, warmup: [cold] }
    expect(shift.phases[1]).toMatchObject({ followMs: 0 })
    const said = warmupRounds(shift)
    expect(said).toContain('one round driven the same way and not counted')
    expect(said).toContain('`auto` did not follow the shift to 2 ms within its phase (auto / best 0.9) and followed the shift to 0.05 ms in 100 ms')
    const run = syntheticRun({}, {
      directFibPerS: 140,
      naiveMixed: [m(200, 50)],
      performanceTester: { delayMs: 1000, points: [], python: { skipped: 'not in this test' } },
      shift
    })
    expect(markdown(run, [])).toContain(said)
    // The figures hold the counted rounds only.
    expect(figures(run).find((x) => x.name.startsWith('ms until auto is back within 5%'))).toMatchObject({ value: 0, met: true })
  })

  it('reports a shift auto never followed within its phase as a miss, in the figures and the table', () => {
    // auto follows the shift to the costly phase at once, and never the shift back.
    const shiftRun: ShiftRun = {
      binsPerS: {
        ...fixed,
        auto: [...phase(7900), ...phase(690), ...phase(5000)]
      },
      autoPoolShare: [...phase(0.02), ...phase(1), ...phase(1)],
      errors: 0
    }
    const shift = { options, runs: [shiftRun], phases: phases([shiftRun], options) }
    expect(shift.phases[2]).toMatchObject({ name: 'low again', followMs: undefined })
    const run = syntheticRun({}, {
      directFibPerS: 140,
      naiveMixed: [m(200, 50)],
      performanceTester: { delayMs: 1000, points: [], python: { skipped: 'not in this test' } },
      shift
    })
    const follow = figures(run).find((x) => x.name.startsWith('ms until auto is back within 5%'))
    expect(follow).toMatchObject({ met: false, shown: 'not within a phase' })
    expect(markdown(run, [])).toMatch(/\| ms until auto is back within 5% [^|]+\| not within a phase \| < 1000 \| \*\*no\*\* \|/)
    // The shift's table: never followed (in its one round), never placed, settled at once (at 5,000
    // jobs/s, on the pool); the inline server settled at once too.
    expect(markdown(run, [])).toMatch(/\| low again \| 0\.05 \|[^\n]+\| \*\*not within the phase\*\* \(never\) \| \*\*not within the phase\*\* \| 0 ms \| 0 ms \(0\) \|/)
  })
})

describe('report', () => {
  it('reads the spin sweep\'s auto line round by round where the rounds were kept, and by the means in runs before', () => {
    const means = {
      costsMs: [0.05, 5], inlinePerS: [10_000, 160], poolPerS: [6_000, 300], autoPerS: [9_000, 297], thresholdMs: 5
    }
    expect(autoSweep(means)?.ratios).toEqual([0.9, 0.99])
    // At 0.05 ms a burst halved auto's second round: the mean of the rounds reads 0.83,
    // the rounds' ratios 1, 0.5 and 0.99.
    const perRound = {
      inline: [[10_000, 10_000, 10_000], [160, 160, 160]],
      pool: [[6_000, 6_000, 6_000], [300, 300, 300]],
      auto: [[10_000, 5_000, 9_900], [300, 291, 300]]
    }
    const sweep = autoSweep({ ...means, autoPerS: [8_300, 297], perRound })
    expect(sweep?.ratios).toEqual([0.99, 1])
    expect(sweep?.lowest).toEqual({ costMs: 0.05, ratio: 0.99 })
    // Each round against the better placement of that round, not of the means.
    const swapped = autoSweep({
      ...means,
      perRound: {
        inline: [[100, 100, 100], [1, 1, 1]], pool: [[200, 50, 200], [1, 1, 1]], auto: [[190, 95, 150], [1, 1, 1]]
      }
    })
    expect(swapped?.ratios[0]).toBeCloseTo(0.95, 10)
  })

  it('computes the ratios it holds itself to from the same run', () => {
    const f = figures(syntheticRun())
    expect(f.find((x) => x.name.startsWith('hybrid I/O p99'))).toMatchObject({ value: 50 / 41, met: true })
    expect(f.find((x) => x.name.startsWith('event-loop I/O p99'))).toMatchObject({ value: 15, met: true })
  })

  it('writes JSON, Markdown and SVG charts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'matrix-'))
    try {
      const run = syntheticRun()
      const { charts } = await writeReport(run, dir)
      expect([...charts].sort()).toEqual(['mixed-latency.svg', 'sweep.svg', 'throughput.svg'])
      for (const c of charts) expect(await readFile(join(dir, 'charts', c), 'utf8')).toMatch(/^<svg/)
      const md = await readFile(join(dir, 'matrix.md'), 'utf8')
      expect(md).toContain('## Verdict')
      expect(md).toContain('| CPU-bound (fib 30) | `processes` | tie: `processes`, `hybrid`, `threads` | `processes` | yes |')
      expect(md).toContain('| I/O-bound, over 1,000 in flight | `event-loop` | `event-loop` | `event-loop` | yes |')
      expect(md).toContain('![sweep.svg](charts/sweep.svg)')
      expect(md).toBe(markdown(run, charts) + '\n')
      const json = JSON.parse(await readFile(join(dir, 'matrix.json'), 'utf8')) as { results: unknown[], figures: unknown[] }
      expect(json.results).toHaveLength(run.results.length)
      expect(json.figures.length).toBeGreaterThan(0)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('puts the article\'s PerformanceTester, its Python figures beside this server\'s, in a table and a chart', async () => {
    const py = (asyncioS: number, asyncioUnlimitedS: number, threadsS: number) => (
      { asyncioS, asyncioUnlimitedS, threadsS })
    const dir = await mkdtemp(join(tmpdir(), 'matrix-'))
    try {
      const run = syntheticRun({}, {
        directFibPerS: 140,
        naiveMixed: [m(200, 50)],
        performanceTester: {
          delayMs: 1000,
          points: [
            { calls: 10, eventLoopS: 1.01, threadPoolS: 1.02, python: py(1.02, 1.03, 1.04) },
            { calls: 3000, eventLoopS: 1.9, threadPoolS: 60.2, python: py(31, 4.6, 61.8) }
          ],
          python: { version: 'Python 3.11.2, aiohttp 3.8.4, requests 2.28.1' }
        }
      })
      const { charts, markdown: file } = await writeReport(run, dir)
      expect(charts).toContain('performance-tester.svg')
      const md = await readFile(file, 'utf8')
      expect(md).toContain('Python 3.11.2, aiohttp 3.8.4, requests 2.28.1')
      expect(md).toContain('| 3,000 | 1.9 s | 60.2 s | 31 s | 4.6 s | 61.8 s |')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('says whether each fresh server answered trivial jobs first, and for how long', () => {
    const run = syntheticRun()
    expect(markdown(run, [])).toContain('Each row is a fresh server tree per model, all up at once; for each cell')
    const warmed = { ...run, plan: { ...run.plan, jitWarmupS: 3 } }
    expect(markdown(warmed, [])).toContain('all up at once, each of which first answers 3 s of trivial jobs (`fib` n=1) over its row\'s transport')
    // The ramp is the plan's: 0.3 s in a quick run, 0.5 s in a full one.
    expect(markdown(run, [])).toContain('1 window of 0.6 s each after a 0.3 s ramp;')
    expect(markdown({ ...run, plan: { ...run.plan, rampS: 0.5 } }, [])).toContain('after a 0.5 s ramp;')
  })

  it('says how long each model took to open the HTTP sweep\'s connections before its windows, where a run recorded it', () => {
    const run = syntheticRun()
    const httpSweep = cells(2, [10, 5000], ['http']).filter((c) => c.row === 'io-sweep')
    const opened = (ms: Partial<Record<Mode, number>> | undefined): MatrixRun => ({
      ...run,
      results: [...run.results, ...httpSweep.flatMap((cell) => (['event-loop', 'hybrid'] as const).map((model) => ({
        model,
        cell,
        startMs: 500,
        runs: [m((cell.inFlight ?? 0) * 3, 300), m((cell.inFlight ?? 0) * 3, 310)]
          .map((w, i) => ms === undefined ? w : { ...w, openMs: (ms[model] ?? 0) + 100 * i })
      })))]
    })
    const text = markdown(opened({ 'event-loop': 610, hybrid: 1250 }), [])
    expect(text).toContain('Each window\'s connections are open before its clock starts: its WebSockets, and its HTTP connections with one `GET /health` each.')
    expect(text).toContain('Opening the 5,000 connections before each window (not counted): `event-loop` 660 (610-710) ms, `hybrid` 1,300 (1,250-1,350) ms.')
    const before = markdown(opened(undefined), [])
    expect(before).not.toContain('open before its clock starts')
    expect(before).not.toContain('Opening the')
  })

  it('opens a window\'s connections before its clock starts', () => {
    expect(loadOptions('http://127.0.0.1:1', spec('io-low').load, 2).openFirst).toBe(true)
  })

  it('says the longest wait for a quiet machine, and each window that began before it was quiet', () => {
    const run = syntheticRun()
    const waits = (ms: (model: Mode, cell: string) => number): MatrixRun => ({
      ...run,
      quiet: { belowCores: 0.25, sampleMs: 100, maxMs: 10_000 },
      results: run.results.map((r) => ({
        ...r,
        runs: r.runs.map((w) => ({ ...w, quietWaitMs: ms(r.model, r.cell.id) }))
      }))
    })
    const calm = markdown(waits((model, cell) => model === 'threads' && cell === 'cpu' ? 9_900 : 0), [])
    expect(calm).toContain('The longest wait before a window was 9,900 ms (`threads`, cpu).')
    expect(calm).not.toContain('began on a machine still busy')
    const busy = markdown(waits((model, cell) => model === 'hybrid' && cell === 'io-low' ? 10_012 : 100), [])
    expect(busy).toContain('The longest wait before a window was 10,012 ms (`hybrid`, io-low). 1 window began on a machine ' +
      'still busy when the wait gave up (`hybrid` in io-low): its figures hold another server\'s work.')
  })

  it('shows the direct rate\'s readings on either side of the CPU row beside the ceiling taken from them', () => {
    const run = syntheticRun({}, {
      directFibPerS: 140,
      directFibPerSEach: [130, 150],
      naiveMixed: [m(200, 50)],
      performanceTester: { delayMs: 1000, points: [], python: { skipped: 'not in this test' } }
    })
    expect(markdown(run, [])).toContain('| fib(30) called directly on one thread | 140 /s (the mean of 130 before the CPU row and 150 after it); x 2 cores = 280 /s, the CPU ceiling |')
  })

  it('shows where auto ran the sweep\'s jobs and its round trip estimate, cost by cost', () => {
    const run = syntheticRun({}, {
      directFibPerS: 140,
      naiveMixed: [m(200, 50)],
      performanceTester: { delayMs: 1000, points: [], python: { skipped: 'not in this test' } },
      offload: {
        costsMs: [0.1, 0.5],
        inlinePerS: [5_000, 1_500],
        poolPerS: [4_000, 1_900],
        autoPerS: [4_900, 1_850],
        thresholdMs: 0.5,
        autoPlaced: [{ poolShare: 0.0004, roundTripMs: 0.5 }, { poolShare: 0.999, roundTripMs: undefined }]
      }
    })
    const md = markdown(run, [])
    expect(md).toContain('| auto\'s jobs on the pool | 0.04% | 99.9% |')
    expect(md).toContain('| auto\'s pool round trip estimate ms | 0.5 | n/a |')
  })

  it('counts a task\'s jobs by placement, and auto\'s round trip, from /metrics text', () => {
    const text = [
      'jobs_total{task="spin",kind="cpu",via="inline",outcome="ok"} 30',
      'jobs_total{task="spin",kind="cpu",via="pool",outcome="ok"} 12',
      'jobs_total{task="spin",kind="cpu",via="pool",outcome="OVERLOADED"} 5',
      'jobs_total{task="fib",kind="cpu",via="pool",outcome="ok"} 7',
      'auto_pool_round_trip_ms{pid="1"} 0.3',
      'auto_pool_round_trip_ms{pid="2"} 0.45'
    ].join('\n')
    expect(jobsByPlacement(text, 'spin')).toEqual({ inline: 30, pool: 12 })
    expect(autoRoundTripMs(text)).toBe(0.45)
    expect(autoRoundTripMs('')).toBeUndefined()
  })

  it('reads the worst event-loop delay p99 from /metrics text', () => {
    expect(worstLoopDelayP99Ms('event_loop_delay_seconds{pid="1",quantile="0.99"} 0.002\nevent_loop_delay_seconds{pid="2",quantile="0.99"} 0.005\nevent_loop_delay_seconds{pid="2",quantile="1"} 0.9')).toBe(5)
  })
})

describe('stability across runs', () => {
  it('says where runs agree, where a row ties, and where the answer changes', () => {
    // Run 3: threads far ahead on the CPU row, where runs 1 and 2 tie processes, hybrid and threads.
    const runs = [syntheticRun(), syntheticRun(), syntheticRun({ threads: 260 })]
    const rows = rowsAcrossRuns(runs)
    const row = (start: string) => rows.find((r) => r.workload.startsWith(start))
    expect(row('I/O-bound, over')).toMatchObject({ sameWinner: true, sameRecommended: true, summary: '`event-loop` wins in all 3 runs' })
    expect(row('CPU-bound')).toMatchObject({ sameWinner: false, sameRecommended: false })
    expect(row('CPU-bound')?.summary).toContain('**the answer changes between runs**: `processes` in 2 of 3, `threads` in 1 of 3')
    expect(said(runs[2]?.verdict[0] as VerdictRow)).toBe('`threads`')
    expect(said(runs[0]?.verdict[0] as VerdictRow)).toBe('tie: `processes`, `hybrid`, `threads`; `processes` recommended')
    const md = stabilityMarkdown(runs, ['a.json', 'b.json', 'c.json'])
    expect(md).toContain('| CPU-bound (fib 30) | tie: `processes`, `hybrid`, `threads`; `processes` recommended |')
    // processes is the classic answer there: it wins or ties in runs 1 and 2, not in run 3.
    expect(md).toMatch(/\| CPU-bound \(fib 30\) \|.* \| `processes`: wins or ties in 2 of 3 \|/)
    // threads' CPU cell: 182 in two runs, 260 in the third: 42.9% between runs.
    expect(md).toMatch(/\| cpu \| `threads` \| 182 \(178(\.\d)?-186\) \| 182 \(178(\.\d)?-186\) \| 260 \(255-265\) \| 42\.9% \|/)
  })

  it('does not call one run stable', () => {
    expect(rowsAcrossRuns([syntheticRun()])[0]?.summary).toBe('measured in 1 run only: stability not known')
  })
})

describe('a fresh server\'s first load', () => {
  it('is trivial jobs, over the row\'s transport, whatever tasks the row runs', async () => {
    const server = await startServer({ MODE: 'event-loop' })
    try {
      await warmJit(server, { transport: 'ws', connections: 2, inFlight: 4, mix: [{ task: 'sleep', input: { ms: 50 }, weight: 1 }] }, 0.5)
      const metrics = await scrape(server.url)
      expect(jobsByPlacement(metrics, 'fib').inline).toBeGreaterThan(100)
      expect(metrics).not.toMatch(/^jobs_total\{[^}]*task="sleep"/m)
    } finally {
      await server.stop()
    }
  })

  it('is made after its first /metrics answer, which a server serves more slowly for about a second after', async () => {
    // A stand-in that records what it is asked, in order.
    const asked: string[] = []
    const server = createServer((req, res) => {
      asked.push(`${req.method ?? ''} ${req.url ?? ''}`)
      req.resume().on('end', () => res.end('{}'))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const load = { transport: 'http' as const, connections: 1, inFlight: 1, mix: [{ task: 'sleep', input: { ms: 1 }, weight: 1 }] }
      await warmJit({ url } as ServerProcess, load, 0.2)
      expect(asked[0]).toBe('GET /metrics')
      // Then its one connection is opened (loadOptions' openFirst), and the load runs on it.
      expect(asked[1]).toBe('GET /health')
      expect(asked.length).toBeGreaterThan(3)
      expect(asked.slice(2).every((a) => a === 'POST /jobs')).toBe(true)
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })
})

describe('the shifting cost on real servers', () => {
  it('drives the rounds not counted like the others, and keeps them apart from the counted ones', async () => {
    const shape = { lowMs: 0.05, highMs: 1, phaseMs: 400, settleMs: 100, binMs: 100, connections: 2, threads: 1 }
    const options: ShiftOptions = { ...shape, repeats: 1, warmupRounds: 1 }
    const steps: string[] = []
    const shift = await measureShift('http://127.0.0.1:9', options, (step) => steps.push(step))
    expect(shift.runs).toHaveLength(1)
    expect(shift.warmup).toHaveLength(1)
    for (const run of [...shift.runs, ...shift.warmup ?? []]) {
      expect(run.errors).toBe(0)
      // Every placement answered in every phase (12 bins of 100 ms: low, high, low again).
      for (const placement of ['inline', 'pool', 'auto'] as const) {
        const bins = run.binsPerS[placement]
        for (const from of [0, 4, 8]) {
          expect(bins.slice(from, from + 4).reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
        }
      }
    }
    expect(shift.phases).toHaveLength(3)
    expect(steps.filter((x) => x.endsWith('not counted'))).toHaveLength(3)
    expect(steps.filter((x) => x.endsWith('round 1 of 1'))).toHaveLength(3)
  }, 90_000)
})

describe('the smoke matrix', () => {
  it('runs one short cell per model on real servers, end to end to a report', async () => {
    const plan = makePlan('smoke', availableParallelism())
    const lines: string[] = []
    const run = await runMatrix(plan, (line) => lines.push(line))
    expect(run.results.map((r) => r.model)).toEqual([...MODELS])
    for (const r of run.results) {
      expect(r.runs).toHaveLength(1)
      expect(r.runs[0]?.jobsPerS).toBeGreaterThan(0)
      expect(r.runs[0]?.peakRssBytes).toBeGreaterThan(0)
      expect(r.runs[0]?.cpuS).toBeGreaterThanOrEqual(0)
      // The whole machine over the same span holds the server tree and the load client (readings a tick apart).
      const { cpuS = 0, machineBusyS = 0, clientS = 0, stealS = -1, quietWaitMs = -1 } = r.runs[0] ?? {}
      expect(machineBusyS).toBeGreaterThanOrEqual(cpuS - 0.05)
      expect(clientS).toBeGreaterThan(0)
      expect(stealS).toBeGreaterThanOrEqual(0)
      expect(quietWaitMs).toBeGreaterThanOrEqual(0)
    }
    expect(run.verdict.map((v) => v.workload)).toEqual(['I/O-bound, 50 in flight'])
    // One row, its models up together and measured in alternation.
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain(`${MODELS.join(', ')}, alternated`)
    const dir = await mkdtemp(join(tmpdir(), 'matrix-smoke-'))
    try {
      await writeReport(run, dir)
      expect((await readdir(dir)).sort()).toEqual(['charts', 'matrix.json', 'matrix.md'])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 90_000)
})
