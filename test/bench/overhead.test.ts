import { afterAll, describe, expect, it } from 'vitest'
import { HEALTH_SAME_ANSWER, overheadFigures } from '../../bench/overhead/figures.js'
import { type Overhead, type Pair, warmUp, warmUpText } from '../../bench/overhead/measure.js'
import { jobsByPlacement, scrape } from '../../bench/matrix/cell.js'
import { startServer, type ServerProcess } from '../support/server-process.js'
import { median, spread } from '../../bench/matrix/stats.js'

const pair = (name: string, ours: number[], reference: number[], kept = true): Pair => ({
  name,
  client: 'autocannon',
  ours: spread(ours),
  reference: spread(reference),
  ...(kept ? { rounds: { ours, reference } } : {})
})

const run = (pairs: Pair[]): Overhead => ({
  at: '2026-12-04T00:00:00.000Z',
  node: 'v20.20.2',
  cores: 2,
  plan: { rounds: 4, windowS: 2, warmupS: 2 },
  pairs,
  rawPiscinaPerS: 20_000,
  cpuCeiling: { directPerS: 100, parallelPerS: 195, cores: 2, oursPerS: 190, clientCpu: 0.05, serverCpu: 1.9 },
  memory: []
})

const figure = (r: Overhead, start: string): { value: number, met: boolean, how: string } => {
  const found = overheadFigures(r).find((f) => f.name.startsWith(start))
  if (found === undefined) throw new Error(`no figure ${start}`)
  return found
}

describe('median', () => {
  it('takes the middle value, or the mean of the two middle ones, and skips what is not finite', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 3, 2])).toBe(2.5)
    expect(median([Number.NaN, 5])).toBe(5)
    expect(median([])).toBeNaN()
  })
})

describe('overhead figures', () => {
  it('reads a pair round by round: one window that caught a burst does not decide the figure', () => {
    // Three rounds where ours ran at 0.95 of the reference, and one where the machine slowed down
    // during our window only. The ratio of the means reads 0.84; the rounds read 0.95.
    const r = run([pair('GET /health', [950, 950, 950, 500], [1000, 1000, 1000, 1000])])
    const health = figure(r, '`GET /health`')
    expect(health.value).toBeCloseTo(0.95, 6)
    expect(health.met).toBe(true)
    expect(health.how).toContain('median of 4 rounds\' ratios (0.5-0.95)')
  })

  it('pairs the windows in order, not the sorted rates', () => {
    // The machine drifts from fast to slow; ours is always 0.8 of the window just before it.
    const reference = [1000, 800, 600, 400]
    const r = run([pair('GET /health', reference.map((v) => v * 0.8), reference)])
    expect(figure(r, '`GET /health`').value).toBeCloseTo(0.8, 6)
    expect(figure(r, '`GET /health`').met).toBe(false)
  })

  it('composes each round\'s inline rate with raw Piscina for the pool job', () => {
    // inline 20,000/s and raw Piscina 20,000/s compose to 10,000/s; ours 8,500/s is 0.85 of it.
    const r = run([pair('trivial job, pool against inline', [8500, 4250], [20_000, 10_000])])
    // second round: inline 10,000 composes to 1 / (1/10,000 + 1/20,000) = 6,667; 4,250 is 0.6375 of it
    const pool = figure(r, 'trivial pool job')
    expect(pool.value).toBeCloseTo((0.85 + 4250 / (1 / (1 / 10_000 + 1 / 20_000))) / 2, 6)
  })

  it('composes each round with its own raw Piscina reading where one was taken per round', () => {
    // The machine twice as fast in round 2 for all three: inline 10,000 then 20,000, raw Piscina
    // 10,000 then 20,000, ours 4,000 then 8,000: 0.8 of each round's composition (5,000, 10,000).
    // With the run's one reading (20,000) for both rounds, round 1 would read 4,000 / 6,667 = 0.6.
    const measured = pair('trivial job, pool against inline', [4000, 8000], [10_000, 20_000])
    const r = run([{ ...measured, alongside: [10_000, 20_000] }])
    const pool = figure(r, 'trivial pool job')
    expect(pool.value).toBeCloseTo(0.8, 6)
    expect(pool.met).toBe(true)
    expect(pool.how).toContain('each against its round\'s inline job and raw Piscina')
    // The same rounds without a reading per round fall back on the run's one, and read lower.
    expect(figure(run([measured]), 'trivial pool job').value).toBeCloseTo((0.6 + 0.8) / 2, 6)
  })

  it('gives the same-answer control beside the /health figure, which it does not change', () => {
    // Against plain Fastify's { status: 'ok' } ours reads 0.8; against plain Fastify giving the
    // same answer, 0.9 (the reference slower by the longer answer).
    const r = run([
      pair('GET /health', [800, 800, 800], [1000, 1000, 1000]),
      pair(HEALTH_SAME_ANSWER, [810, 810, 810], [900, 900, 900])
    ])
    const health = figure(r, '`GET /health`')
    expect(health.value).toBeCloseTo(0.8, 6)
    expect(health.met).toBe(false)
    expect(health.how).toContain('Against plain Fastify giving this server\'s answer (its fields, with a response schema): 0.9, median of 3 rounds\' ratios')
    // The control is context, not a figure of its own.
    expect(overheadFigures(r).filter((f) => f.name.includes('/health'))).toHaveLength(1)
  })

  it('says what each server refused where either did, and nothing where neither did', () => {
    const shedding = { ...pair('fib 30, 8 connections', [150, 160], [170, 170]), refused: { ours: [40, 60], reference: [0, 0] } }
    expect(figure(run([shedding]), '`hybrid` fib 30 vs').how).toContain('; refused 50 (40-60) / 0 per s')
    const none = { ...pair('fib 30, 8 connections', [150, 160], [170, 170]), refused: { ours: [0, 0], reference: [0, 0] } }
    expect(figure(run([none]), '`hybrid` fib 30 vs').how).not.toContain('refused')
    expect(figure(run([pair('fib 30, 8 connections', [150, 160], [170, 170])]), '`hybrid` fib 30 vs').how).not.toContain('refused')
  })

  it('falls back to the ratio of the means for a run that kept no rounds', () => {
    const r = run([pair('GET /health', [900, 500], [1000, 1000], false)])
    const health = figure(r, '`GET /health`')
    expect(health.value).toBeCloseTo(0.7, 6)
    expect(health.how).toContain('ratio of the means')
  })
})

describe('warm-up', () => {
  const started: ServerProcess[] = []
  afterAll(async () => { await Promise.all(started.map(async (s) => await s.stop())) })

  it('runs trivial jobs through a fresh server before the pair\'s own load, only where the plan asks', async () => {
    const [withJit, without] = await Promise.all([startServer({ MODE: 'event-loop' }), startServer({ MODE: 'event-loop' })])
    started.push(withJit, without)
    const drive = { connections: 2, path: '/health' }
    await warmUp(withJit.url, drive, { rounds: 1, windowS: 1, warmupS: 0.2, jitWarmupS: 0.5 })
    await warmUp(without.url, drive, { rounds: 1, windowS: 1, warmupS: 0.2 })
    expect(jobsByPlacement(await scrape(withJit.url), 'fib').inline).toBeGreaterThan(100)
    expect(jobsByPlacement(await scrape(without.url), 'fib').inline).toBe(0)
  })

  it('says how a plan warms each server up', () => {
    expect(warmUpText({ rounds: 6, windowS: 2, warmupS: 2 })).toBe('2 s of its pair\'s own load')
    expect(warmUpText({ rounds: 6, windowS: 2, warmupS: 2, jitWarmupS: 3 })).toMatch(/^3 s of trivial jobs from 50 connections as it starts .*, then 2 s of its pair's own load$/)
  })
})
