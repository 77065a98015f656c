import { Pool } from 'undici'
import { NO_SHEDDING, startServer, type ServerProcess } from '../../test/support/server-process.js'
import { orderOf, roundOrder, type RoundOrder } from './order.js'
import { median, spread, type Spread } from './stats.js'

/**
 * The shifting row: one task whose cost jumps from `lowMs` to `highMs` of CPU and back while every
 * job carries the same input (`phased`), so that only measured run times can tell. Three servers of
 * one layout (one process, a pool of `cores` threads) differ only in where CPU jobs run: always
 * inline, always on the pool, or `CPU_JOBS=auto`. Each is driven by the same closed loop through
 * the three phases; its answers are counted in bins as they arrive, with where each ran.
 */
export interface ShiftOptions {
  lowMs: number
  highMs: number
  /** Length of each phase (low, high, low again), ms. */
  phaseMs: number
  /** Of the fixed placements' phases, what is left out after a shift before their rate is taken (ms). */
  settleMs: number
  binMs: number
  connections: number
  repeats: number
  threads: number
  /** SPIN_ITERATIONS_PER_MS for the three servers (absent from runs where each thread measured its own). */
  spinIterationsPerMs?: number
  /**
   * Rounds driven first and not counted (absent from runs before them: none). A fresh server runs
   * the path a placement takes through code V8 has not compiled yet, and `auto`'s pool path first
   * runs in its first high phase: in the runs without them, `auto` served about 0.9 of the pool in
   * the first round's high phase and followed in 1.6-3.3 s, in 1 s or less in every later round.
   */
  warmupRounds?: number
}

export type Placement = 'inline' | 'pool' | 'auto'
export const PLACEMENTS: readonly Placement[] = ['inline', 'pool', 'auto']

export interface ShiftRun {
  /** Answers per bin (jobs/s), from the start of the first low phase, for each placement. */
  binsPerS: Record<Placement, number[]>
  /** Of auto's answers in each bin, the share that ran on the pool. */
  autoPoolShare: number[]
  errors: number
}

/** A phase of the shift, as the report shows it. */
export interface ShiftPhase {
  name: string
  costMs: number
  /** jobs/s of each placement over the phase, less its first `settleMs`. */
  perS: Record<Placement, Spread>
  best: Exclude<Placement, 'auto'>
  /**
   * auto's rate over the settled phase against the best fixed placement's in the same round: the
   * median of the rounds' ratios.
   */
  autoRatio: number
  /**
   * After the shift into this phase: ms until auto's rate, over FOLLOW_WINDOW_MS, first reaches 95%
   * of the best placement's settled rate in the same round (undefined if it never did within the
   * phase), and ms until 90% of its answers in a bin ran where the best placement runs them.
   */
  followMs: number | undefined
  placedMs: number | undefined
  /**
   * ms until auto's rate, over FOLLOW_WINDOW_MS, first reaches 95% of its own settled rate in the
   * same round: how long it took to adapt, apart from the level it settled at (which autoRatio
   * says). A round on which auto served less than the best placement throughout, with its jobs
   * where the best placement runs them, does not follow however soon it settled: this tells the
   * two apart. Absent from runs before it was measured.
   */
  settlesMs?: number | undefined
  /** followMs of each round, in order (null: it did not follow within the phase); the phase's is the slowest. */
  followEachMs?: Array<number | null>
  /**
   * For each round, ms until the best placement's own rate, over FOLLOW_WINDOW_MS, first reaches
   * 95% of its settled rate in the round (null: never within the phase). It has nothing to adapt
   * to: what it takes is the machine's own dips and V8's, the floor under auto's followMs.
   */
  bestSettlesEachMs?: Array<number | null>
}

export interface ShiftResult {
  options: ShiftOptions
  runs: ShiftRun[]
  phases: ShiftPhase[]
  /** The rounds driven before `runs` and not counted (options.warmupRounds), as they went. */
  warmup?: ShiftRun[]
  /** How the rounds were ordered (roundOrder); absent from runs that rotated them. */
  order?: RoundOrder
}

export const FOLLOW_SHARE = 0.95
/** auto's rate is taken over this long to say it has followed. */
export const FOLLOW_WINDOW_MS = 300

async function drive (
  server: ServerProcess, body: string, startAt: number, endAt: number, options: ShiftOptions
): Promise<{
  bins: number[]
  poolBins: number[]
  errors: number
}> {
  const n = Math.ceil((endAt - startAt) / options.binMs)
  const bins = new Array<number>(n).fill(0)
  const poolBins = new Array<number>(n).fill(0)
  let errors = 0
  const pool = new Pool(server.url, { connections: options.connections, pipelining: 1 })
  try {
    await Promise.all(Array.from({ length: options.connections }, async () => {
      while (Date.now() < endAt) {
        const res = await pool.request({ path: '/jobs', method: 'POST', headers: { 'content-type': 'application/json' }, body })
        const answer = await res.body.json() as { ranOn?: { via: string } }
        const at = Date.now()
        if (res.statusCode !== 200) errors++
        else if (at >= startAt && at < endAt) {
          const bin = Math.floor((at - startAt) / options.binMs)
          bins[bin] = (bins[bin] ?? 0) + 1
          if (answer.ranOn?.via === 'pool') poolBins[bin] = (poolBins[bin] ?? 0) + 1
        }
      }
    }))
  } finally {
    await pool.close()
  }
  return { bins, poolBins, errors }
}

function envOf (placement: Placement, { threads, spinIterationsPerMs }: ShiftOptions): Record<string, string> {
  const layout: Record<string, string> = { PROCESSES: '1', THREADS: String(threads) }
  if (spinIterationsPerMs !== undefined) layout.SPIN_ITERATIONS_PER_MS = String(spinIterationsPerMs)
  return placement === 'auto'
    ? { MODE: 'auto', ...layout }
    : { MODE: 'hybrid', CPU_JOBS: placement, ...layout }
}

/**
 * Each placement through low, high, low; `repeats` times, the three servers in alternation (they are
 * all up at once, and each gets a warm-up on the low phase first), in a new order each round; after
 * `warmupRounds` rounds driven the same way and kept apart.
 */
export async function measureShift (
  upstreamUrl: string, options: ShiftOptions, progress: (step: string) => void
): Promise<ShiftResult> {
  const servers: ServerProcess[] = []
  try {
    for (const p of PLACEMENTS) {
      servers.push(await startServer({ ...NO_SHEDDING, ...envOf(p, options), UPSTREAM_URL: upstreamUrl }))
    }
    const warmup: ShiftRun[] = []
    const runs: ShiftRun[] = []
    const warmupRounds = options.warmupRounds ?? 0
    for (let r = 0; r < warmupRounds + options.repeats; r++) {
      const counted = r >= warmupRounds
      const run: ShiftRun = { binsPerS: { inline: [], pool: [], auto: [] }, autoPoolShare: [], errors: 0 }
      // Each round in a different order (roundOrder), so that neither the machine's drift within a
      // round nor the server measured just before favours any of them; the counted rounds start
      // from the first order, as in runs without rounds before them.
      const index = counted ? r - warmupRounds : r
      for (const k of roundOrder(PLACEMENTS.length, index)) {
        const placement = PLACEMENTS[k] as Placement
        progress(counted
          ? `shifting cost, ${placement}, round ${index + 1} of ${options.repeats}`
          : `shifting cost, ${placement}, round ${index + 1} of ${warmupRounds} not counted`)
        const server = servers[k] as ServerProcess
        // The phases are set on the wall clock, which the task reads: a warm-up of one phase first.
        const warmUpMs = 1500
        const startAt = Date.now() + warmUpMs
        const from = startAt + options.phaseMs
        const to = from + options.phaseMs
        const endAt = to + options.phaseMs
        const body = JSON.stringify({ task: 'phased', input: { lowMs: options.lowMs, highMs: options.highMs, from, to } })
        const { bins, poolBins, errors } = await drive(server, body, startAt, endAt, options)
        const perS = 1000 / options.binMs
        run.binsPerS[placement] = bins.map((b) => b * perS)
        if (placement === 'auto') run.autoPoolShare = bins.map((b, i) => b === 0 ? Number.NaN : (poolBins[i] ?? 0) / b)
        run.errors += errors
      }
      (counted ? runs : warmup).push(run)
    }
    const result: ShiftResult = { options, runs, phases: phases(runs, options), order: orderOf(PLACEMENTS.length) }
    return warmupRounds > 0 ? { ...result, warmup } : result
  } finally {
    await Promise.all(servers.map(async (s) => await s.stop()))
  }
}

/** Of the rounds' figures, the slowest; undefined (never) if one never got there (undefined or null). */
export function slowest (xs: ReadonlyArray<number | null | undefined>): number | undefined {
  return xs.some((x) => x === undefined || x === null) ? undefined : Math.max(...xs as number[])
}

/** Each phase's figures from the runs' bins. */
export function phases (runs: ShiftRun[], options: ShiftOptions): ShiftPhase[] {
  const perPhase = Math.round(options.phaseMs / options.binMs)
  const settle = Math.round(options.settleMs / options.binMs)
  const window = Math.max(1, Math.round(FOLLOW_WINDOW_MS / options.binMs))
  const mean = (xs: number[]): number => xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length
  return [['low', options.lowMs], ['high', options.highMs], ['low again', options.lowMs]].map(([name, costMs], k) => {
    const first = k * perPhase
    const settled = (bins: number[]): number => mean(bins.slice(first + settle, first + perPhase))
    const perS = Object.fromEntries(
      PLACEMENTS.map((p) => [p, spread(runs.map((r) => settled(r.binsPerS[p])))])
    ) as Record<Placement, Spread>
    const best = perS.inline.mean >= perS.pool.mean ? 'inline' : 'pool'
    // auto is held to the best placement of its own round: the machine's speed drifts by tens of
    // percent between rounds (the same phase of the same server 6,215 and 9,227 jobs/s two rounds
    // apart), and against the rounds' mean a round on a slow minute could never follow.
    // The first phase has no shift into it: auto starts there from what its warm-up taught it.
    const reaches = (bins: number[], rate: number): number | undefined => {
      for (let i = first; i + window <= first + perPhase; i++) {
        if (mean(bins.slice(i, i + window)) >= FOLLOW_SHARE * rate) return (i - first) * options.binMs
      }
      return undefined
    }
    const follow = (run: ShiftRun): number | undefined => reaches(run.binsPerS.auto, settled(run.binsPerS[best]))
    const settles = (run: ShiftRun): number | undefined => reaches(run.binsPerS.auto, settled(run.binsPerS.auto))
    const bestSettles = (run: ShiftRun): number | undefined => reaches(run.binsPerS[best], settled(run.binsPerS[best]))
    const placed = (run: ShiftRun): number | undefined => {
      for (let i = first; i < first + perPhase; i++) {
        const share = run.autoPoolShare[i] ?? Number.NaN
        if ((best === 'pool' ? share : 1 - share) >= 0.9) return (i - first) * options.binMs
      }
      return undefined
    }
    const each = (xs: Array<number | undefined>): Array<number | null> => xs.map((x) => x ?? null)
    const follows = runs.map(follow)
    return {
      name: name as string,
      costMs: costMs as number,
      perS,
      best,
      autoRatio: median(runs.map((r) => settled(r.binsPerS.auto) / settled(r.binsPerS[best]))),
      followMs: slowest(follows),
      placedMs: slowest(runs.map(placed)),
      settlesMs: slowest(runs.map(settles)),
      followEachMs: each(follows),
      bestSettlesEachMs: each(runs.map(bestSettles))
    }
  })
}
