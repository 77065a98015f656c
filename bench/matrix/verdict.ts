import type { Mode } from '../../src/config.js'
import type { CellResult, Measurement } from './cell.js'
import { MIXED_CELL, USERS_HIGH } from './plan.js'
import { fmt, spread } from './stats.js'

export interface VerdictRow {
  workload: string
  classic: Mode
  /** The best on the row's measure, by its mean. */
  winner: Mode
  /** False when the runner-up is within the winner's spread (or 5%): a tie, and `tied` names it. */
  decided: boolean
  /** The winner and every model within its spread or 5% of it on the row's measure. */
  tied: Mode[]
  /** The winner; of a tie, the best by the next criterion (p99, then peak memory). */
  recommended: Mode
  agrees: boolean
  measure: string
  /** Built from this run's figures (who won by how much, or why a tie was broken), then the mechanism. */
  why: string
}

/** Sweep points at or below this many jobs in flight are the classic matrix's "under 1,000" row. */
export const SWEEP_SPLIT = 1000
/** Closer than this, two means are a tie even when measured once. */
export const TIE = 0.05
/** The mixed row: a model serves its I/O when it answers this share of the I/O jobs offered... */
export const MIXED_IO_SERVED = 0.9
/** ...and is compared on I/O latency when it keeps this share of the best CPU jobs/s of those that do. */
export const MIXED_CPU_KEPT = 0.8
const pct = (share: number): string => `${Math.round(share * 100)}%`
/** Ideal throughput of a sweep point: every job in flight is a 250 ms wait. */
export const SWEEP_JOB_MS = 250

type Pick = (m: CellResult['runs'][number]) => number
const mean = (r: CellResult, pick: Pick): number => spread(r.runs.map(pick)).mean
const jobsOf: Pick = (m) => m.jobsPerS
const p99Of: Pick = (m) => m.p99Ms
const rssOf: Pick = (m) => m.peakRssBytes

/** How a row is judged: a figure of each cell, and which way is better. */
export interface Measure {
  name: string
  unit: string
  pick: Pick
  higherIsBetter: boolean
}
export const JOBS_PER_S: Measure = { name: 'jobs/s', unit: 'jobs/s', pick: jobsOf, higherIsBetter: true }
export const P99: Measure = { name: 'p99', unit: 'ms', pick: p99Of, higherIsBetter: false }

export interface Decision {
  winner: Mode
  decided: boolean
  tied: Mode[]
  recommended: Mode
  /** One or two sentences from the figures: the margin, or the tie and what broke it. */
  reason: string
}

const fmtRange = (s: ReturnType<typeof spread>): string => s.n > 1 && s.min !== s.max ? `${fmt(s.mean)} (${fmt(s.min)}-${fmt(s.max)})` : fmt(s.mean)
const names = (rs: CellResult[]): string => rs.map((r) => `\`${r.model}\``).join(', ')

/**
 * The winner on `measure`, or a tie: a model ties the winner when their spreads over the repeated
 * windows overlap, or their means are within 5% (one window has no spread, and 5% is within what
 * this machine's noise moves a figure). A tie is broken by the lower p99, and a tie on p99 too by
 * the lower peak memory; the reason says which.
 */
export function decide (results: CellResult[], measure: Measure): Decision | undefined {
  const scored = results.filter((r) => Number.isFinite(mean(r, measure.pick)))
  if (scored.length === 0) return undefined
  const better = (a: number, b: number): number => measure.higherIsBetter ? b - a : a - b
  const sorted = [...scored].sort((a, b) => better(mean(a, measure.pick), mean(b, measure.pick)))
  const winner = sorted[0] as CellResult
  const w = spread(winner.runs.map(measure.pick))
  const close = (r: CellResult): boolean => {
    const s = spread(r.runs.map(measure.pick))
    const overlap = s.n > 1 && w.n > 1 && s.min <= w.max && w.min <= s.max
    return overlap || Math.abs(s.mean - w.mean) <= TIE * Math.abs(w.mean)
  }
  const tied = sorted.filter(close)
  const figure = (r: CellResult): string => `\`${r.model}\` ${fmtRange(spread(r.runs.map(measure.pick)))}`
  if (tied.length === 1) {
    const runnerUp = sorted[1]
    const margin = runnerUp === undefined ? Number.NaN : Math.abs(w.mean / mean(runnerUp, measure.pick) - 1)
    const reason = runnerUp === undefined
      ? `Only \`${winner.model}\` was measured: ${figure(winner)} ${measure.unit}.`
      : `${figure(winner)} ${measure.unit} against the runner-up's ${figure(runnerUp)}: ` +
        `${fmt(margin * 100)}% ${measure.higherIsBetter ? 'more' : 'less'}, ` +
        (w.n > 1 ? 'outside its spread.' : 'over 5% apart (one window each: no spread to compare).')
    return { winner: winner.model, decided: true, tied: [winner.model], recommended: winner.model, reason }
  }
  // A tie: the next criterion, then the one after.
  const byP99 = [...tied].sort((a, b) => mean(a, p99Of) - mean(b, p99Of))
  const bestP99 = mean(byP99[0] as CellResult, p99Of)
  const p99Tied = byP99.filter((r) => mean(r, p99Of) <= bestP99 * (1 + TIE))
  const pick = p99Tied.length === 1
    ? byP99[0] as CellResult
    : [...p99Tied].sort((a, b) => mean(a, rssOf) - mean(b, rssOf))[0] as CellResult
  const how = p99Tied.length === 1
    ? `the lowest p99 of them (${fmt(bestP99)} ms; ${byP99.slice(1).map((r) => `\`${r.model}\` ${fmt(mean(r, p99Of))}`).join(', ')})`
    : `the least peak memory of those whose p99 is also within 5% (${names(p99Tied)}): ${fmt(mean(pick, rssOf) / 2 ** 20)} MiB`
  const reason = `${tied.map(figure).join(', ')} ${measure.unit}: within each other's spread or 5%, a tie on ${measure.name}. ` +
    `Recommended \`${pick.model}\` for ${how}.`
  return { winner: winner.model, decided: false, tied: tied.map((r) => r.model), recommended: pick.model, reason }
}

function row (
  workload: string, classic: Mode, measure: Measure, measureText: string, results: CellResult[], mechanism: string
): VerdictRow | undefined {
  const d = decide(results, measure)
  if (d === undefined) return undefined
  return {
    workload,
    classic,
    winner: d.winner,
    decided: d.decided,
    tied: d.tied,
    recommended: d.recommended,
    agrees: d.tied.includes(classic),
    measure: measureText,
    why: `${d.reason} ${mechanism}`
  }
}

/**
 * The largest number of jobs in flight at which a model still gave 80% of the ideal throughput with
 * under 1% errors (timeouts included).
 */
export function holdsUpTo (results: CellResult[], model: Mode, transport: string): number {
  let held = 0
  for (const r of results.filter((x) => x.model === model && x.cell.row === 'io-sweep' && x.cell.load.transport === transport).sort((a, b) => (a.cell.inFlight ?? 0) - (b.cell.inFlight ?? 0))) {
    const n = r.cell.inFlight ?? 0
    const jobs = mean(r, (m) => m.jobsPerS)
    const errorShare = mean(r, (m) => {
      const failed = m.errorCount + (m.timedOut ?? 0)
      return failed / Math.max(1, failed + m.jobsPerS)
    })
    if (jobs >= 0.8 * n / (SWEEP_JOB_MS / 1000) && errorShare < 0.01) held = n
    else break
  }
  return held
}

/**
 * The cores a window kept busy: CPU seconds over the seconds between the two CPU readings, or over
 * `windowS` for runs made before that span was recorded.
 */
export function coresBusy (m: Measurement, windowS = Number.NaN): number {
  return m.cpuS / (m.cpuSpanS ?? windowS)
}

/** The server's CPU per answered job, in ms: the cores it kept busy over the jobs/s it answered (both loads). */
export function cpuMsPerJob (m: Measurement, windowS = Number.NaN): number {
  return coresBusy(m, windowS) / (m.jobsPerS + (m.background?.jobsPerS ?? 0)) * 1000
}

/**
 * What held each model back in these cells, from the same windows: the cores its server tree kept
 * busy and its CPU per job, its worst event-loop delay, and what it refused.
 */
export function limits (results: CellResult[], cores: number, windowS: number): string {
  const parts = results.map((r) => {
    const busy = mean(r, (m) => coresBusy(m, windowS))
    const perJob = mean(r, (m) => cpuMsPerJob(m, windowS))
    const delay = mean(r, (m) => m.loopDelayP99Ms)
    const failed = r.runs.reduce((a, m) => a + m.errorCount + (m.timedOut ?? 0), 0)
    return `\`${r.model}\` ${fmt(busy)} of ${cores} cores busy (${fmt(perJob)} ms of CPU per job), loop delay p99 ${fmt(delay)} ms` +
      (failed > 0 ? `, ${failed.toLocaleString('en-US')} jobs failed or timed out` : '')
  })
  return `Measured: ${parts.join('; ')}.`
}

const ioJobs = (r: CellResult): number => mean(r, jobsOf)
const cpuJobs = (r: CellResult): number => mean(r, (m) => m.background?.jobsPerS ?? Number.NaN)

/**
 * The mixed row's models that serve both kinds of job: those that answer MIXED_IO_SERVED of the I/O
 * offered (`keepUp`; all of them if none does), and of those, the ones that keep MIXED_CPU_KEPT of
 * the best CPU jobs/s among them (`fair`).
 */
export function mixedServed (mixed: CellResult[]): {
  offered: number, keepUp: CellResult[], behind: CellResult[], topCpu: number, fair: CellResult[], unfair: CellResult[]
} {
  const offered = mixed[0]?.cell.load.rate ?? Number.NaN
  const keepUp = mixed.filter((r) => ioJobs(r) >= MIXED_IO_SERVED * offered)
  const behind = mixed.filter((r) => !keepUp.includes(r))
  const pool = keepUp.length > 0 ? keepUp : mixed
  const topCpu = Math.max(...pool.map(cpuJobs))
  const fair = pool.filter((r) => cpuJobs(r) >= MIXED_CPU_KEPT * topCpu)
  return { offered, keepUp, behind, topCpu, fair, unfair: pool.filter((r) => !fair.includes(r)) }
}

/** For each row of the classic matrix: what won here, what to use, and whether Node agrees. */
export function verdict (results: CellResult[], cores: number, windowS: number): VerdictRow[] {
  const rows: Array<VerdictRow | undefined> = []
  const of = (id: string): CellResult[] => results.filter((r) => r.cell.id === id)

  const cpu = of('cpu')
  if (cpu.length > 0) {
    rows.push(row('CPU-bound (fib 30)', 'processes', JOBS_PER_S, 'jobs/s', cpu,
      `${limits(cpu, cores, windowS)} One process runs JavaScript on one event loop, so \`event-loop\` is held to one core. ` +
      `Node's worker threads are V8 isolates that run in parallel, with no GIL, so threads scale across the ${cores} cores as processes do; ` +
      'what a pool job pays more is the crossing: a structured-clone copy of input and result and a message between threads.'))
  }

  const low = of('io-low')
  if (low.length > 0) {
    rows.push(row('I/O-bound, 50 in flight', 'threads', JOBS_PER_S, 'jobs/s', low,
      `${limits(low, cores, windowS)} At 50 in flight a 50-thread pool is never short of threads, and every model spends its time waiting on sockets: ` +
      'the event loop waits on all of them at once through epoll, the pool holds one thread per wait.'))
  }

  for (const [label, classic, within] of [
    [`I/O-bound, up to ${SWEEP_SPLIT.toLocaleString('en-US')} in flight`, 'threads', (n: number) => n <= SWEEP_SPLIT],
    [`I/O-bound, over ${SWEEP_SPLIT.toLocaleString('en-US')} in flight`, 'event-loop', (n: number) => n > SWEEP_SPLIT]
  ] as const) {
    const points = results.filter((r) => r.cell.row === 'io-sweep' && within(r.cell.inFlight ?? 0))
    if (points.length === 0) continue
    const top = Math.max(...points.map((r) => r.cell.inFlight ?? 0))
    const transport = points.find((r) => r.cell.inFlight === top)?.cell.load.transport
    const atTop = points.filter((r) => r.cell.inFlight === top && r.cell.load.transport === transport)
    const held = atTop.map((r) => `\`${r.model}\` ${holdsUpTo(results, r.model, transport ?? 'ws').toLocaleString('en-US')}`)
    rows.push(row(label, classic, JOBS_PER_S, `jobs/s at ${top.toLocaleString('en-US')} in flight (${transport})`, atTop,
      `The ideal at ${top.toLocaleString('en-US')} in flight is ${fmt(top / (SWEEP_JOB_MS / 1000))} jobs/s; ` +
      `each held 80% of the ideal up to (jobs in flight): ${held.join(', ')}. ${limits(atTop, cores, windowS)} ` +
      'A pool thread per waiting job caps `threads` at 50 waits at once; past them jobs queue (MAX_QUEUE) and are shed. ' +
      'An event loop keeps a wait as a promise and a timer in its heap, so what limits it is the CPU each job costs on its one core; ' +
      '`processes` and `hybrid` also wait on event loops, one per core, which is the article\'s coroutine model run once per core.'))
  }

  for (const [id, label, classic] of [
    ['users low', 'User service (90% cached reads, 10% inserts), 50 in flight', 'threads'],
    ['users high', `User service (90% cached reads, 10% inserts), ${USERS_HIGH.toLocaleString('en-US')} in flight`, 'event-loop']
  ] as const) {
    const cells = of(id)
    if (cells.length === 0) continue
    rows.push(row(label, classic, JOBS_PER_S, 'jobs/s', cells,
      `${limits(cells, cores, windowS)} Each job is a Redis GET (and on a miss a PostgreSQL SELECT and a SET), or an INSERT in a transaction: waits on sockets, ` +
      'plus the CPU of the drivers\' protocol parsing. On the event loop those waits cost a promise each and share the process\'s ' +
      'pg pool (PG_POOL_MAX) and one Redis connection; in `threads` every pool thread is an isolate with its own pg connection and ' +
      'Redis connection, and a job holds its thread for every wait.'))
  }

  const mixed = of(MIXED_CELL)
  if (mixed.length > 0) {
    // Served means both kinds served: the I/O offered (an open loop at its rate) answered, and of the
    // models that do, those that keep most CPU throughput; then the I/O latency decides.
    const { offered, keepUp, behind, topCpu, fair, unfair } = mixedServed(mixed)
    const rates = (rs: CellResult[], of: (r: CellResult) => number): string => rs.map((r) => `\`${r.model}\` ${fmt(of(r))}`).join(', ')
    const leftOut = [
      behind.length === 0
        ? ''
        : keepUp.length === 0
          ? `No model answered ${pct(MIXED_IO_SERVED)} of the ${fmt(offered)} I/O jobs/s offered (${rates(behind, ioJobs)}): all are compared. `
          : `Left out for answering under ${pct(MIXED_IO_SERVED)} of the ${fmt(offered)} I/O jobs/s offered: ${rates(behind, ioJobs)}. `,
      unfair.length === 0 ? '' : `Left out for their CPU jobs/s (under ${pct(MIXED_CPU_KEPT)} of the best of the rest, ${fmt(topCpu)}): ${rates(unfair, cpuJobs)}. `
    ].join('')
    rows.push(row('Mixed: I/O at 100/s with CPU saturating', 'hybrid', P99,
      `I/O p99 ms, among models that answer ${pct(MIXED_IO_SERVED)} of the I/O offered and keep ${pct(MIXED_CPU_KEPT)} of the best CPU jobs/s of those`, fair,
      `${leftOut}${limits(mixed, cores, windowS)} ` +
      'Inline CPU jobs hold the event loop that the I/O jobs need to be answered, so I/O waits behind the CPU jobs\' run time ' +
      '(`event-loop`, `processes`); on a pool the CPU runs beside the loop, and the loop stays free to answer I/O (`hybrid`, `threads`).'))
  }
  return rows.filter((r): r is VerdictRow => r !== undefined)
}

/** `auto` in one cell against the fixed models: the best of them, and whether it was the worst. */
export interface AutoCell {
  cell: string
  measure: string
  auto: number
  best: number
  bestModel: Mode
  /** auto over the best fixed model, the way up being better (best / auto for a latency). */
  ratio: number
  /** Within the best fixed model's spread or 5% of it: a tie, as the verdict would call it. */
  tied: boolean
  worst: boolean
}

/** `auto` must keep this share of the best fixed model's figure in every cell. */
export const AUTO_KEEPS = 0.95

/**
 * For every cell `auto` was measured in: its figure against the best and the worst of the fixed
 * models, on each cell's own measure: jobs/s, but I/O p99 where the I/O comes at a fixed rate (the
 * mixed row, whose models all answer what is offered). With CPU saturating beside it, auto's CPU
 * jobs/s is held against the fixed models that answer the I/O, and its I/O p99 against those that
 * serve both, as the verdict judges that row. The worst: behind the worst fixed model by more than
 * its spread and 5%.
 */
export function autoAgainstFixed (results: CellResult[]): AutoCell[] {
  const out: AutoCell[] = []
  for (const id of [...new Set(results.map((r) => r.cell.id))]) {
    const cells = results.filter((r) => r.cell.id === id)
    const auto = cells.find((r) => r.model === 'auto')
    const fixed = cells.filter((r) => r.model !== 'auto')
    if (auto === undefined || fixed.length === 0) continue
    // Which fixed models serve both loads is judged among the fixed models alone.
    const served = mixedServed(fixed)
    const measures: Array<[string, Measure, CellResult[]]> = id === MIXED_CELL
      ? [
          ['CPU jobs/s, of the models that answer the I/O', { ...JOBS_PER_S, pick: (m) => m.background?.jobsPerS ?? Number.NaN }, served.keepUp],
          ['I/O p99 ms, of the models that serve both', P99, served.fair]
        ]
      : [[id === 'mixed io alone' ? 'I/O p99 ms' : 'jobs/s', id === 'mixed io alone' ? P99 : JOBS_PER_S, fixed]]
    for (const [name, measure, among] of measures) {
      const value = (r: CellResult): number => mean(r, measure.pick)
      const up = measure.higherIsBetter
      const ranked = among.filter((r) => r.model !== 'auto' && Number.isFinite(value(r))).sort((a, b) => up ? value(b) - value(a) : value(a) - value(b))
      const best = ranked[0]
      const worstFixed = ranked[ranked.length - 1]
      if (best === undefined || worstFixed === undefined) continue
      const a = value(auto)
      const w = spread(worstFixed.runs.map(measure.pick))
      const s = spread(auto.runs.map(measure.pick))
      const b = spread(best.runs.map(measure.pick))
      const overlap = s.n > 1 && b.n > 1 && s.min <= b.max && b.min <= s.max
      const apart = s.n < 2 || w.n < 2 || (up ? s.max < w.min : s.min > w.max)
      const beyond = apart && (up ? a < (1 - TIE) * w.mean : a > (1 + TIE) * w.mean)
      out.push({
        cell: id,
        measure: name,
        auto: a,
        best: value(best),
        bestModel: best.model,
        ratio: up ? a / value(best) : value(best) / a,
        tied: overlap || Math.abs(a - b.mean) <= TIE * Math.abs(b.mean),
        worst: ranked.length > 1 && beyond
      })
    }
  }
  return out
}
