import type { Mode } from '../../src/config.js'
import type { CellResult } from './cell.js'
import { USERS_HIGH } from './plan.js'
import { fmt, spread } from './stats.js'

export interface VerdictRow {
  workload: string
  classic: Mode
  winner: Mode
  /** Models within 5% of the winner on the row's measure. */
  tied: Mode[]
  recommended: Mode
  agrees: boolean
  measure: string
  why: string
}

/** Sweep points at or below this many jobs in flight are the classic matrix's "under 1,000" row. */
export const SWEEP_SPLIT = 1000
export const TIE = 0.05
/** Ideal throughput of a sweep point: every job in flight is a 250 ms wait. */
export const SWEEP_JOB_MS = 250

const mean = (r: CellResult, pick: (m: CellResult['runs'][number]) => number): number => spread(r.runs.map(pick)).mean

function best (
  results: CellResult[], score: (r: CellResult) => number, higherIsBetter: boolean
): { winner: CellResult, tied: CellResult[] } {
  const scored = results.filter((r) => Number.isFinite(score(r)))
  const sorted = [...scored].sort((a, b) => higherIsBetter ? score(b) - score(a) : score(a) - score(b))
  const winner = sorted[0] as CellResult
  const top = score(winner)
  const tied = sorted.filter((r) => higherIsBetter ? score(r) >= top * (1 - TIE) : score(r) <= top * (1 + TIE))
  return { winner, tied }
}

function row (
  workload: string,
  classic: Mode,
  measure: string,
  found: { winner: CellResult, tied: CellResult[] },
  why: string,
  prefer: (tied: CellResult[]) => CellResult = (t) => t[0] as CellResult
): VerdictRow {
  const tied = found.tied.map((r) => r.model)
  return {
    workload,
    classic,
    winner: found.winner.model,
    tied,
    recommended: prefer(found.tied).model,
    agrees: tied.includes(classic),
    measure,
    why
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

/** For each row of the classic matrix: what won here, what to use, and whether Node agrees. */
export function verdict (results: CellResult[], cores: number): VerdictRow[] {
  const rows: VerdictRow[] = []
  const of = (id: string): CellResult[] => results.filter((r) => r.cell.id === id)
  const jobs = (r: CellResult): number => mean(r, (m) => m.jobsPerS)
  const p99 = (r: CellResult): number => mean(r, (m) => m.p99Ms)
  const lowestP99 = (t: CellResult[]): CellResult => [...t].sort((a, b) => p99(a) - p99(b))[0] as CellResult

  const cpu = of('cpu')
  if (cpu.length > 0) {
    const found = best(cpu, jobs, true)
    const single = cpu.find((r) => r.model === 'event-loop')
    rows.push(row('CPU-bound (fib 30)', 'processes', 'jobs/s', found,
      `One process runs JavaScript on one event loop, so \`event-loop\` is held to one core (${fmt(single === undefined ? Number.NaN : jobs(single))} jobs/s). ` +
      `Node's worker threads are V8 isolates that run in parallel, with no GIL, so threads scale across the ${cores} cores as processes do; ` +
      'what a pool job pays more is the crossing: a structured-clone copy of input and result and a message between threads.', lowestP99))
  }

  const low = of('io-low')
  if (low.length > 0) {
    rows.push(row('I/O-bound, 50 in flight', 'threads', 'jobs/s', best(low, jobs, true),
      'At 50 in flight a 50-thread pool is never short of threads, and every model spends its time waiting on sockets: ' +
      'the event loop waits on all of them at once through epoll, the pool holds one thread per wait.', lowestP99))
  }

  for (const [label, classic, pick] of [
    [`I/O-bound, up to ${SWEEP_SPLIT.toLocaleString('en-US')} in flight`, 'threads', (n: number) => n <= SWEEP_SPLIT],
    [`I/O-bound, over ${SWEEP_SPLIT.toLocaleString('en-US')} in flight`, 'event-loop', (n: number) => n > SWEEP_SPLIT]
  ] as const) {
    const points = results.filter((r) => r.cell.row === 'io-sweep' && pick(r.cell.inFlight ?? 0))
    if (points.length === 0) continue
    const top = Math.max(...points.map((r) => r.cell.inFlight ?? 0))
    const transport = points.find((r) => r.cell.inFlight === top)?.cell.load.transport
    const atTop = points.filter((r) => r.cell.inFlight === top && r.cell.load.transport === transport)
    const held = (m: Mode): string => `\`${m}\` ${holdsUpTo(results, m, transport ?? 'ws').toLocaleString('en-US')}`
    const rate = (m: Mode): string => {
      const r = atTop.find((x) => x.model === m)
      return r === undefined ? '' : `\`${m}\` ${fmt(jobs(r))}/s`
    }
    const found = best(atTop, jobs, true)
    rows.push(row(label, classic, `jobs/s at ${top.toLocaleString('en-US')} in flight (${transport})`, found,
      `At ${top.toLocaleString('en-US')} in flight the ideal is ${fmt(top / (SWEEP_JOB_MS / 1000))} jobs/s: ${(['event-loop', 'threads', 'processes', 'hybrid'] as const).map(rate).filter((x) => x !== '').join(', ')}. ` +
      `Each held 80% of the ideal up to (jobs in flight): ${(['event-loop', 'threads', 'processes', 'hybrid'] as const).map(held).join(', ')}. ` +
      'A pool thread per waiting job caps `threads` at 50 waits at once; past them jobs queue (MAX_QUEUE) and are shed. ' +
      'An event loop keeps a wait as a promise and a timer in its heap, so what limits it is the CPU each job costs on its one core; ' +
      '`processes` and `hybrid` also wait on event loops, one per core, which is the article\'s coroutine model run once per core.', lowestP99))
  }

  for (const [id, label, classic] of [
    ['users low', 'User service (90% cached reads, 10% inserts), 50 in flight', 'threads'],
    ['users high', `User service (90% cached reads, 10% inserts), ${USERS_HIGH.toLocaleString('en-US')} in flight`, 'event-loop']
  ] as const) {
    const cells = of(id)
    if (cells.length === 0) continue
    rows.push(row(label, classic, 'jobs/s', best(cells, jobs, true),
      'Each job is a Redis GET (and on a miss a PostgreSQL SELECT and a SET), or an INSERT in a transaction: waits on sockets, ' +
      'plus the CPU of the drivers\' protocol parsing. On the event loop those waits cost a promise each and share the process\'s ' +
      'pg pool (PG_POOL_MAX) and one Redis connection; in `threads` every pool thread is an isolate with its own pg connection and ' +
      'Redis connection, and a job holds its thread for every wait.', lowestP99))
  }

  const mixed = of('mixed io+cpu')
  if (mixed.length > 0) {
    const cpuJobs = (r: CellResult): number => mean(r, (m) => m.background?.jobsPerS ?? Number.NaN)
    const topCpu = Math.max(...mixed.map(cpuJobs))
    const fair = mixed.filter((r) => cpuJobs(r) >= 0.8 * topCpu)
    rows.push(row('Mixed: I/O at 100/s with CPU saturating', 'hybrid', 'I/O p99 ms, among models within 80% of the best CPU jobs/s', best(fair, p99, false),
      'Inline CPU jobs hold the event loop that the I/O jobs need to be answered, so I/O latency takes on the CPU jobs\' run time ' +
      '(`event-loop`, `processes`); on a pool the CPU runs beside the loop, and the loop stays free to answer I/O (`hybrid`, `threads`).'))
  }
  return rows
}
