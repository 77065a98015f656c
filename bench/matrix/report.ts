import { overheadFigures } from '../overhead/figures.js'
import { warmUpText } from '../overhead/measure.js'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Mode } from '../../src/config.js'
import type { CellResult, Measurement } from './cell.js'
import type { QuietOptions } from '../lib/proc.js'
import { bars, groupedBars, lines, renderSvg, series } from './charts.js'
import { MIXED_CELL, USERS_HIGH, type Plan } from './plan.js'
import type { PerformanceTester, References } from './references.js'
import { describeOrder, type RoundOrder } from './order.js'
import { fmt, fmtSpread, median, ratio, spread, type Spread } from './stats.js'
import { FOLLOW_SHARE, FOLLOW_WINDOW_MS, phases, PLACEMENTS as SHIFT_PLACEMENTS, slowest, type ShiftResult } from './shift.js'
import { AUTO_KEEPS, autoAgainstFixed, coresBusy, cpuMsPerJob, holdsUpTo, type VerdictRow } from './verdict.js'

export interface Machine {
  cpu: string
  cores: number
  memoryGiB: number
  node: string
  os: string
}

export interface MatrixRun {
  measuredAt: string
  /** When the verdict was derived again from the same measurements by later rules (`--render`). */
  renderedAt?: string
  durationS: number
  machine: Machine
  plan: Plan
  results: CellResult[]
  references: References | undefined
  verdict: VerdictRow[]
  /** How the windows of a cell's models were ordered, round by round (absent from runs with one fixed order). */
  cellOrder?: RoundOrder
  /** When a warm-up or a window may start (untilQuiet); absent from runs that did not wait. */
  quiet?: QuietOptions
}

export interface Figure {
  name: string
  value: number
  target: string
  met: boolean | undefined
  /** What the table says instead of the value, where the value is not a number (a shift never followed). */
  shown?: string
}

const over = (r: CellResult | undefined, pick: (m: Measurement) => number): Spread => spread(r?.runs.map(pick) ?? [])
const MiB = 2 ** 20

function find (run: MatrixRun, model: Mode, id: string): CellResult | undefined {
  return run.results.find((r) => r.model === model && r.cell.id === id)
}

/** The five ratios the project holds itself to, each from this run. */
export function figures (run: MatrixRun): Figure[] {
  const refs = run.references
  const out: Figure[] = []
  const push = (name: string, value: number, target: string, test: (v: number) => boolean): void => {
    out.push({ name, value, target, met: Number.isFinite(value) ? test(value) : undefined })
  }
  if (refs !== undefined) {
    // The overhead figures (bench/overhead), each by the client that measured it.
    if (refs.overhead !== undefined) for (const f of overheadFigures(refs.overhead)) out.push({ name: `${f.name} (${f.client})`, value: f.value, target: f.target, met: f.met })
    push('hybrid CPU jobs/s in the CPU row (16 clients) vs cores x direct rate', ratio(over(find(run, 'hybrid', 'cpu'), (m) => m.jobsPerS).mean, run.machine.cores * refs.directFibPerS), '>= 0.93', (v) => v >= 0.93)
  }
  const ioRatio = (model: Mode): number => ratio(over(find(run, model, MIXED_CELL), (m) => m.p99Ms).mean, over(find(run, model, 'mixed io alone'), (m) => m.p99Ms).mean)
  push('hybrid I/O p99 with CPU saturating vs without', ioRatio('hybrid'), '<= 2', (v) => v <= 2)
  push('event-loop I/O p99 with CPU saturating vs without', ioRatio('event-loop'), '>= 10 expected', (v) => v >= 10)
  if (refs !== undefined) {
    const total = (runs: Measurement[]): number => spread(
      runs.map((m) => m.jobsPerS + (m.background?.jobsPerS ?? 0))
    ).mean
    push('hybrid vs naive Fastify+Piscina server, mixed load (jobs/s)', ratio(total(find(run, 'hybrid', MIXED_CELL)?.runs ?? []), total(refs.naiveMixed)), '>= 0.95', (v) => v >= 0.95)
  }
  const autoCells = autoAgainstFixed(run.results)
  if (autoCells.length > 0) {
    const lowest = autoCells.reduce((a, b) => b.ratio < a.ratio ? b : a)
    push(`auto vs the best fixed model, its lowest cell (${lowest.cell}, ${lowest.measure})`, lowest.ratio, `>= ${AUTO_KEEPS}`, (v) => v >= AUTO_KEEPS)
    push('cells in which auto was the worst model', autoCells.filter((c) => c.worst).length, '0', (v) => v === 0)
    push('cells in which auto was under 0.95 of the best fixed model and outside its spread', autoCells.filter((c) => c.ratio < AUTO_KEEPS && !c.tied).length, '0', (v) => v === 0)
  }
  const sweep = autoSweep(refs?.offload)
  if (sweep !== undefined) push(`auto vs the better of inline and pool, spin sweep, its lowest cost (${sweep.lowest.costMs} ms)`, sweep.lowest.ratio, `>= ${AUTO_KEEPS}`, (v) => v >= AUTO_KEEPS)
  if (refs?.shift !== undefined) {
    const shifts = refs.shift.phases.slice(1)
    const name = `ms until auto is back within 5% of the best placement after a shift, slowest of ${shifts.length} shifts x ${refs.shift.runs.length} rounds`
    // A round that never followed within its phase is a miss, not a figure missing.
    if (shifts.some((p) => p.followMs === undefined)) {
      out.push({ name, value: Number.POSITIVE_INFINITY, shown: 'not within a phase', target: '< 1000', met: false })
    } else {
      push(name, Math.max(...shifts.map((p) => p.followMs as number)), '< 1000', (v) => v < 1000)
    }
  }
  return out
}

/**
 * The spin sweep's auto line against the better fixed placement at each cost; undefined before it
 * was measured. Where each round was kept, the median of the rounds' ratios (each against the
 * better placement of its round); in runs before, the ratio of the means.
 */
export function autoSweep (offload: References['offload']): { ratios: number[], lowest: { costMs: number, ratio: number } } | undefined {
  if (offload?.autoPerS === undefined) return undefined
  const better = (i: number): number => Math.max(offload.inlinePerS[i] ?? 0, offload.poolPerS[i] ?? 0)
  const rounds = offload.perRound
  const ratios = offload.costsMs.map((_, i) => rounds === undefined
    ? (offload.autoPerS?.[i] ?? Number.NaN) / better(i)
    : median((rounds.auto[i] ?? []).map((a, r) => a / Math.max(rounds.inline[i]?.[r] ?? 0, rounds.pool[i]?.[r] ?? 0))))
  const at = ratios.reduce((lo, r, i) => r < (ratios[lo] ?? Infinity) ? i : lo, 0)
  return { ratios, lowest: { costMs: offload.costsMs[at] as number, ratio: ratios[at] as number } }
}

export function table (head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
}

function errorsText (runs: Measurement[]): string {
  const sum: Record<string, number> = {}
  for (const m of runs) for (const [code, n] of Object.entries(m.errors)) sum[code] = (sum[code] ?? 0) + n
  const parts = Object.entries(sum).map(([code, n]) => `${code} ${n}`)
  return parts.length === 0 ? '0' : parts.join(', ')
}

/** Jobs a cell's windows neither completed nor failed: timed out, or still waiting at the window's end. */
function unansweredText (runs: Measurement[]): string {
  if (runs.some((m) => m.timedOut === undefined || m.abandoned === undefined)) return 'not counted'
  const timedOut = runs.reduce((a, m) => a + (m.timedOut ?? 0), 0)
  const abandoned = runs.reduce((a, m) => a + (m.abandoned ?? 0), 0)
  return `${timedOut} / ${abandoned}`
}

export function cellRow (r: CellResult): string[] {
  return [
    `\`${r.model}\``,
    fmtSpread(over(r, (m) => m.jobsPerS)),
    fmt(over(r, (m) => m.p50Ms).mean),
    fmtSpread(over(r, (m) => m.p99Ms)),
    errorsText(r.runs),
    unansweredText(r.runs),
    fmt(over(r, (m) => m.peakRssBytes).mean / MiB),
    fmt(over(r, (m) => m.loopDelayP99Ms).mean),
    fmt(over(r, (m) => coresBusy(m)).mean),
    fmt(over(r, (m) => cpuMsPerJob(m)).mean),
    fmt(r.startMs)
  ]
}

export const CELL_HEAD = ['model', 'jobs/s', 'p50 ms', 'p99 ms', 'errors', 'timed out / abandoned', 'peak RSS MiB', 'loop delay p99 ms', 'cores busy', 'CPU ms per job', 'start ms']

/** Whether the run's windows opened their connections before their clocks started (Measurement.openMs). */
function opensFirst (run: MatrixRun): boolean {
  return run.results.some((r) => r.runs.some((m) => m.openMs !== undefined))
}

/**
 * How long each model's windows of one cell took to open their connections, the mean with
 * (min-max); '' for runs that did not record it.
 */
function openingText (cells: CellResult[], models: readonly Mode[]): string {
  return models.flatMap((m) => {
    const r = cells.find((x) => x.model === m)
    if (r === undefined || r.runs.some((x) => x.openMs === undefined)) return []
    return [`\`${m}\` ${fmtSpread(over(r, (x) => x.openMs as number))} ms`]
  }).join(', ')
}

/** The report's sentence on how long windows waited for a quiet machine ('' for runs that did not wait). */
function quietWaits (run: MatrixRun): string {
  const quiet = run.quiet
  if (quiet === undefined) return ''
  let longest: { ms: number, model: Mode, cell: string } | undefined
  const notQuiet: string[] = []
  for (const r of run.results) {
    for (const m of r.runs) {
      if (m.quietWaitMs === undefined) continue
      if (m.quietWaitMs >= quiet.maxMs) notQuiet.push(`\`${r.model}\` in ${r.cell.id}`)
      if (m.quietWaitMs >= (longest?.ms ?? 0)) longest = { ms: m.quietWaitMs, model: r.model, cell: r.cell.id }
    }
  }
  if (longest === undefined) return ''
  const plural = notQuiet.length > 1
  return ` Each warm-up and window starts once the machine is quiet (under ${quiet.belowCores} of a core busy over ` +
    `${quiet.sampleMs} ms, waiting at most ${quiet.maxMs / 1000} s): what the server measured before it still does ` +
    'after its load stopped is not measured against the next one. The longest wait before a window was ' +
    `${fmt(longest.ms)} ms (\`${longest.model}\`, ${longest.cell}).` +
    (notQuiet.length === 0
      ? ''
      : ` ${notQuiet.length} window${plural ? 's' : ''} began on a machine still busy when the wait gave up ` +
        `(${notQuiet.join(', ')}): ${plural ? 'their' : 'its'} figures hold another server's work.`)
}

export function markdown (run: MatrixRun, charts: string[]): string {
  const { machine, plan, references: refs } = run
  const models = plan.models
  const out: string[] = []
  out.push('# The decision matrix, measured\n')
  out.push(`${run.measuredAt}, \`npm run bench${plan.name === 'quick' ? ' -- --quick' : ''}\` (${plan.name} run, ${Math.round(run.durationS)} s): ` +
    `${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.os}. ` +
    'Each row is a fresh server tree per model, all up at once' +
    ((plan.jitWarmupS ?? 0) > 0 ? `, each of which first answers ${plan.jitWarmupS} s of trivial jobs (\`fib\` n=1) over its row's transport, so that V8 has compiled its request path` : '') +
    '; for each cell each model is warmed up in rounds of ' +
    `${plan.warmupS} s until its throughput settles (within 10%), then the models are measured in alternation, ` +
    `${plan.repeats} window${plan.repeats > 1 ? 's' : ''} of ${plan.windowS} s each after a ${plan.rampS} s ramp; ` +
    'where measured more than once a figure is the mean with (min-max).' +
    (opensFirst(run) ? ' Each window\'s connections are open before its clock starts: its WebSockets, and its HTTP connections with one `GET /health` each.' : '') +
    (plan.repeats > 1 ? ` ${describeOrder(run.cellOrder ?? 'fixed')}` : '') +
    quietWaits(run) +
    ' The load client runs on the same machine and shares its cores.' +
    (run.renderedAt === undefined ? '' : ` The verdict and this report were derived again from the run's measurements on ${run.renderedAt} (\`npm run bench -- --render\`); no figure was measured again.`) +
    '\n')

  out.push('## Verdict\n')
  const code = (m: Mode): string => `\`${m}\``
  out.push(table(['workload', 'the classic answer', 'winner here', 'recommended', 'Node agrees?', 'why'],
    run.verdict.map((v) => [
      v.workload, code(v.classic),
      // Runs from before ties were told apart have no `decided`: they show the winner as they did.
      v.decided === false ? `tie: ${v.tied.map(code).join(', ')}` : code(v.winner),
      code(v.recommended), v.agrees ? 'yes' : '**no**', v.why
    ])))
  out.push('\nA winner is named only where the runner-up is outside its spread over the repeated windows and more than 5% behind; ' +
    'else the row is a tie, and the recommendation goes by p99, then by peak memory. "Node agrees" when the classic answer wins or ties.\n')
  out.push(`\nThe measure of each row: ${run.verdict.map((v) => `${v.workload}: ${v.measure}`).join('; ')}.\n`)

  const figs = figures(run)
  if (figs.length > 0) {
    out.push('## The figures this server holds itself to\n')
    out.push(table(['figure', 'measured', 'target', 'met'], figs.map((f) => [f.name, f.shown ?? fmt(f.value), f.target, f.met === undefined ? 'n/a' : f.met ? 'yes' : '**no**'])))
    const overhead = run.references?.overhead
    if (overhead !== undefined) out.push(`\nThe pairs of bench/overhead warm each server up with ${warmUpText(overhead.plan)}.`)
    out.push('')
  }

  for (const [title, id] of [
    ['CPU-bound: fib(30), 8 clients per core, closed loop', 'cpu'],
    ['I/O-bound, low concurrency: 50 clients, `http` with a 50 ms delay', 'io-low'],
    ['User service, 50 clients over HTTP: 90% `cache` (a random seeded user, cache-aside), 10% `db` write', 'users low'],
    [`User service, ${USERS_HIGH.toLocaleString('en-US')} in flight over 10 WebSockets: the same mix`, 'users high']
  ] as const) {
    const rows = models.map((m) => find(run, m, id)).filter((r): r is CellResult => r !== undefined)
    if (rows.length === 0) continue
    out.push(`## ${title}\n`)
    out.push(table(CELL_HEAD, rows.map(cellRow)))
    out.push('')
  }

  const sweep = run.results.filter((r) => r.cell.row === 'io-sweep')
  if (sweep.length > 0) {
    out.push('## I/O-bound, the concurrency sweep: `sleep` 250 ms, N jobs in flight\n')
    out.push('Ideal throughput is N / 0.25 s. A cell: jobs/s, p99 ms, errors, jobs timed out / abandoned at the window\'s end.\n')
    const transports = [...new Set(sweep.map((r) => r.cell.load.transport))]
    for (const t of transports) {
      const points = [
        ...new Set(sweep.filter((r) => r.cell.load.transport === t).map((r) => r.cell.inFlight ?? 0))
      ].sort((a, b) => a - b)
      out.push(`### over ${t === 'ws' ? 'WebSocket' : 'HTTP'}\n`)
      out.push(table(['in flight', 'ideal jobs/s', ...models.map((m) => `\`${m}\``)], points.map((n) => [
        n.toLocaleString('en-US'),
        fmt(n / 0.25),
        ...models.map((m) => {
          const r = sweep.find((x) => x.model === m && x.cell.inFlight === n && x.cell.load.transport === t)
          return r === undefined
            ? ''
            : `${fmt(over(r, (x) => x.jobsPerS).mean)}, ${fmt(over(r, (x) => x.p99Ms).mean)} ms, ${errorsText(r.runs)}, ${unansweredText(r.runs)}`
        })
      ])))
      out.push(`\nHolds 80% of the ideal rate with under 1% errors up to: ${models.map((m) => `\`${m}\` ${holdsUpTo(run.results, m, t).toLocaleString('en-US')}`).join(', ')} in flight.\n`)
      const most = points[points.length - 1]
      const opening = t === 'http' && most !== undefined ? openingText(sweep.filter((r) => r.cell.load.transport === t && r.cell.inFlight === most), models) : ''
      if (opening !== '') out.push(`Opening the ${most?.toLocaleString('en-US')} connections before each window (not counted): ${opening}.\n`)
    }
  }

  const mixedRows = models.map((m) => [m, find(run, m, 'mixed io alone'), find(run, m, MIXED_CELL)] as const).filter(([, a, b]) => a !== undefined && b !== undefined)
  if (mixedRows.length > 0) {
    out.push('## Mixed: `http` jobs (20 ms delay) at 100/s, alone and with fib(30) saturating the cores\n')
    out.push(table(['model', 'I/O p50 ms alone', 'I/O p99 ms alone', 'I/O p99 ms with CPU', 'p99 ratio', 'I/O errors', 'CPU jobs/s', 'loop delay p99 ms'], mixedRows.map(([m, a, b]) => {
      const alone = over(a, (x) => x.p99Ms).mean
      const withCpu = over(b, (x) => x.p99Ms).mean
      return [`\`${m}\``, fmt(over(a, (x) => x.p50Ms).mean), fmt(alone), fmtSpread(over(b, (x) => x.p99Ms)), fmt(ratio(withCpu, alone)), errorsText(b?.runs ?? []),
        fmtSpread(over(b, (x) => x.background?.jobsPerS ?? Number.NaN)), fmt(over(b, (x) => x.loopDelayP99Ms).mean)]
    })))
    out.push('')
  }

  if (refs !== undefined) {
    out.push('## References, measured in the same run\n')
    const naive = spread(refs.naiveMixed.map((m) => m.jobsPerS + (m.background?.jobsPerS ?? 0)))
    out.push(table(['what', 'figure'], [
      ['fib(30) called directly on one thread', `${fmt(refs.directFibPerS)} /s${directReadings(refs)}; x ${machine.cores} cores = ${fmt(refs.directFibPerS * machine.cores)} /s, the CPU ceiling`],
      ...(refs.overhead === undefined
        ? [['this server against plain Fastify, raw Piscina and the naive server', 'measured in the full run and by `npm run bench:overhead`']]
        : [
            ...refs.overhead.pairs.map((p) => [`${p.name}, ${p.client}: this server / the reference`, `${fmtSpread(p.ours)} / ${fmtSpread(p.reference)} per s`]),
            ['raw Piscina, no-op task, in process', `${fmt(refs.overhead.rawPiscinaPerS)} tasks/s`]
          ]),
      ['naive Fastify + Piscina server, mixed load, all jobs', `${fmtSpread(naive)} jobs/s, errors ${errorsText(refs.naiveMixed)}`],
      ...(refs.memory === undefined
        ? [['memory per I/O job and per pool thread', 'measured in the full run only']]
        : [
            [`memory per I/O job in flight (${refs.memory.ioJobs.toLocaleString('en-US')} sleeps, \`event-loop\`)`, `${fmt(refs.memory.perIoJobKiB)} KiB (the article says about 1 KB per coroutine)`],
            [`memory per pool thread (${refs.memory.threadsAdded} threads started, \`threads\`)`, `${fmt(refs.memory.perThreadMiB)} MiB (the article says about 8 MB per thread)`]
          ])
    ]))
    out.push(testerSection(testerSweep(refs.performanceTester)))
  }
  if (refs?.offload !== undefined) {
    out.push('\n### When sending a CPU job to the pool pays\n')
    const sweep = autoSweep(refs.offload)
    out.push(`\`spin\` of each cost, ${2 * machine.cores} clients: inline on one event loop (\`event-loop\`) against a pool of ${machine.cores} threads in one process (\`hybrid\`, PROCESSES=1)` +
      `${sweep === undefined ? '' : ', and the same pool\'s layout with each job placed by its measured cost (`auto`, PROCESSES=1)'}.` +
      `${refs.offload.rounds === undefined ? '' : ` The servers are up at once; at each cost, after 0.2 s of warm-up each, they are measured in alternation, ${refs.offload.rounds} windows of ${refs.offload.windowS ?? '?'} s each, and a figure is their mean.`}` +
      `${refs.offload.warmPassS === undefined ? '' : ` Before the first cost each server ran every cost for ${refs.offload.warmPassS} s, not counted, so that each has run its placements' paths (a fresh server runs them through code V8 has not compiled yet; \`auto\` first takes its pool path at the first cost it sends there).`}` +
      `${refs.offload.perRound === undefined ? '' : ` ${describeOrder(refs.offload.order)} auto's ratio at a cost is the median of the rounds' ratios, each against the better placement of its round.`}` +
      `${refs.offload.autoPlaced === undefined ? '' : ' Where `auto` ran the jobs of its rounds (`/metrics`, its warm-up left out), and its estimate of the pool\'s round trip after them (its rule\'s line is half of it).'}` +
      `${pinnedSpin(refs.offload.spinIterationsPerMs)}\n`)
    out.push(table(['task cost ms', ...refs.offload.costsMs.map(String)], [
      ['inline jobs/s', ...refs.offload.inlinePerS.map(fmt)],
      ['pool jobs/s', ...refs.offload.poolPerS.map(fmt)],
      ...(sweep === undefined ? [] : [['auto jobs/s', ...(refs.offload.autoPerS ?? []).map(fmt)], ['auto / the better of the two', ...sweep.ratios.map(fmt)]]),
      ...(refs.offload.autoPlaced === undefined
        ? []
        : [
            ['auto\'s jobs on the pool', ...refs.offload.autoPlaced.map((p) => `${fmt(100 * p.poolShare)}%`)],
            ['auto\'s pool round trip estimate ms', ...refs.offload.autoPlaced.map((p) => p.roundTripMs === undefined ? 'n/a' : fmt(p.roundTripMs))]
          ])
    ]))
    out.push(`\nThe pool pays from **${refs.offload.thresholdMs === undefined ? 'no cost measured here' : `${refs.offload.thresholdMs} ms`}** of CPU per job: below it, the crossing to a thread costs more than the second core gives.\n`)
  }

  if (refs?.shift !== undefined) out.push(shiftSection(refs.shift))
  const autoCells = autoAgainstFixed(run.results)
  if (autoCells.length > 0) {
    out.push('\n## `auto` against the fixed models, cell by cell\n')
    out.push(`\`auto\` (\`MODE=auto\`: the \`hybrid\` layout, each CPU job inline or on the pool by its task's measured cost) against the best fixed model of each cell; the target is ${AUTO_KEEPS} of it and never the worst.\n`)
    out.push(table(['cell', 'measure', '`auto`', 'best fixed model', 'auto / best', 'within its spread?', 'the worst?'], autoCells.map((c) => [
      c.cell, c.measure, fmt(c.auto), `\`${c.bestModel}\` ${fmt(c.best)}`, c.ratio >= AUTO_KEEPS ? fmt(c.ratio) : `**${fmt(c.ratio)}**`,
      c.tied ? 'yes' : 'no', c.worst ? '**yes**' : 'no'
    ])))
    out.push('')
  }

  if (charts.length > 0) {
    out.push('## Charts\n')
    for (const c of charts) out.push(`![${c}](charts/${c})\n`)
  }
  return out.join('\n')
}

/** The direct rate's readings on either side of the CPU row, where the run has them. */
function directReadings ({ directFibPerSEach: each }: References): string {
  return each?.length === 2 ? ` (the mean of ${fmt(each[0] as number)} before the CPU row and ${fmt(each[1] as number)} after it)` : ''
}

/** What the servers of the sweep and the shift were told a ms of `spin` is, where the run pinned it. */
function pinnedSpin (perMs: number | undefined): string {
  return perMs === undefined
    ? ''
    : ` Every server does the same work per ms: \`SPIN_ITERATIONS_PER_MS=${perMs}\`, measured once by the bench (measured by each thread, it differed by up to 16% between threads).`
}

/**
 * What the shift's rounds before the counted ones were, and how auto followed in them: the first
 * time a fresh server runs a placement's path it runs it through code V8 is still compiling.
 */
export function warmupRounds (shift: ShiftResult): string {
  const warmup = shift.warmup ?? []
  if (warmup.length === 0) return ''
  const [, ...shifts] = phases(warmup, shift.options)
  const rounds = warmup.length === 1 ? 'one round' : `${warmup.length} rounds`
  const follows = shifts.map((p) => `${p.followMs === undefined
    ? `did not follow the shift to ${p.costMs} ms within its phase`
    : `followed the shift to ${p.costMs} ms in ${fmt(p.followMs)} ms`} (auto / best ${fmt(p.autoRatio)})`)
  return ` Before the counted rounds, ${rounds} driven the same way and not counted, so that each server has run its placements' paths ` +
    `(a fresh server runs them through code V8 has not compiled yet): in ${warmup.length === 1 ? 'it' : 'them'} \`auto\` ${follows.join(' and ')}.`
}

const FOLLOWS_LATE = 'A shift placed and settled at once that still follows late is a round in which `auto` served less ' +
  'than the best placement with its jobs in the same place.'

/** The shifting row: each phase's rates, and how long auto took to follow each shift. */
export function shiftSection (shift: ShiftResult): string {
  const o = shift.options
  const ms = (v: number | undefined): string => v === undefined ? '**not within the phase**' : `${fmt(v)} ms`
  // Each round's figure after the slowest, in the rounds' order (a run derived before they were
  // kept shows the slowest alone).
  const rounds = (xs: Array<number | null> | undefined): string =>
    xs === undefined ? '' : ` (${xs.map((x) => x === null ? 'never' : fmt(x)).join(', ')})`
  return [
    `\n### A cost that shifts: \`phased\` from ${o.lowMs} ms to ${o.highMs} ms of CPU and back\n`,
    `One process with a pool of ${o.threads} threads, ${o.connections} clients, closed loop, the same input on every job; ` +
      `phases of ${o.phaseMs / 1000} s, ${shift.runs.length} round${shift.runs.length > 1 ? 's' : ''}, the three servers in alternation. ${describeOrder(shift.order)} ` +
      `A phase's rate leaves out its first ${o.settleMs} ms. "Follows in": from the shift until auto's rate over ${FOLLOW_WINDOW_MS} ms first reaches ` +
      `${FOLLOW_SHARE} of the best placement's settled rate in the same round; "auto / best": the median of the rounds' ratios; "placed in": until 90% of its answers in a ${o.binMs} ms bin ran where the best placement runs them; ` +
      `"settles in": until its rate over ${FOLLOW_WINDOW_MS} ms first reaches ${FOLLOW_SHARE} of its own settled rate in the round, how long it took to adapt apart from the level it settled at ` +
      `(the slowest round of each; for "follows in", each round's then follows in brackets, in the rounds' order). ${FOLLOWS_LATE} ` +
      '"Best placement settles in": the same as "settles in" for the best fixed placement, which has nothing to adapt to: ' +
      `how long the machine's own dips (and V8's) kept a server under ${FOLLOW_SHARE} of its settled rate after the shift, ` +
      `the floor under "follows in" (the slowest round, then each round's).${pinnedSpin(o.spinIterationsPerMs)}` +
      `${warmupRounds(shift)}\n`,
    table(['phase', 'cost ms', 'inline jobs/s', 'pool jobs/s', '`auto` jobs/s', 'auto / best', 'follows in', 'placed in', 'settles in', 'best placement settles in'], shift.phases.map((p, i) => [
      p.name, String(p.costMs), fmtSpread(p.perS.inline), fmtSpread(p.perS.pool), fmtSpread(p.perS.auto),
      fmt(p.autoRatio),
      ...(i === 0
        ? ['(start)', '(start)', '(start)', '(start)']
        : [
            ms(p.followMs) + rounds(p.followEachMs), ms(p.placedMs), 'settlesMs' in p ? ms(p.settlesMs) : '(not measured)',
            p.bestSettlesEachMs === undefined ? '(not measured)' : ms(slowest(p.bestSettlesEachMs)) + rounds(p.bestSettlesEachMs)
          ])
    ]))
  ].join('\n')
}

/** Runs made before the tester became a sweep measured one point, 100 calls, through this server only. */
type OldTester = { calls: number, eventLoopS: number, threadPoolS: number, delayMs: number }
export function testerSweep (t: PerformanceTester | OldTester): PerformanceTester {
  if ('points' in t) return t
  return { delayMs: t.delayMs, points: [{ calls: t.calls, eventLoopS: t.eventLoopS, threadPoolS: t.threadPoolS }], python: { skipped: 'not part of this run' } }
}

/** The article's PerformanceTester at each count, this server's figures beside the article's own code's. */
function testerSection (t: PerformanceTester): string {
  const python = 'version' in t.python ? t.python.version : undefined
  const s = (n: number | undefined): string => n === undefined ? 'n/a' : `${fmt(n)} s`
  return [
    `\n### The article's PerformanceTester: N calls of a ${t.delayMs} ms delay at once\n`,
    'Seconds until every call is answered. Through this server: N `http` jobs over up to 10 WebSockets, none shed and none timed out. ' +
      `The article's own code (bench/article/performance_tester.py, ${python ?? `not run: ${'skipped' in t.python ? t.python.skipped : ''}`}) ` +
      'against the same delay service: aiohttp with its defaults, which open at most 100 connections at a time, the same with that limit lifted, ' +
      'and `requests` on a pool of 50 threads.\n',
    table(
      ['calls at once', '`event-loop`', '`threads` (50)', 'Python asyncio, as written', 'Python asyncio, no connection limit', 'Python, 50 threads'],
      t.points.map((p) => [p.calls.toLocaleString('en-US'), s(p.eventLoopS), s(p.threadPoolS), s(p.python?.asyncioS), s(p.python?.asyncioUnlimitedS), s(p.python?.threadsS)])
    )
  ].join('\n')
}

/** SVG charts under `dir`, returning their file names. */
export async function writeCharts (run: MatrixRun, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true })
  const written: string[] = []
  const save = async (name: string, spec: Parameters<typeof renderSvg>[0]): Promise<void> => {
    await writeFile(join(dir, name), await renderSvg(spec))
    written.push(name)
  }
  const throughput = run.results.filter((r) => r.cell.row === 'cpu' || r.cell.row === 'io-low' || r.cell.id === MIXED_CELL).map((r) => ({
    workload: r.cell.id === MIXED_CELL ? 'mixed (all jobs)' : r.cell.id,
    model: r.model,
    jobsPerS: over(r, (m) => m.jobsPerS + (m.background?.jobsPerS ?? 0)).mean
  }))
  if (throughput.length > 0) await save('throughput.svg', groupedBars('Throughput per model per workload', throughput, 'workload', 'jobsPerS', 'model', 'jobs/s'))
  const sweep = run.results.filter((r) => r.cell.row === 'io-sweep').map((r) => ({ inFlight: r.cell.inFlight ?? 0, transport: r.cell.load.transport, model: r.model, jobsPerS: over(r, (m) => m.jobsPerS).mean }))
  if (sweep.length > 0) await save('sweep.svg', lines('The concurrency sweep: sleep 250 ms', sweep, 'inFlight', 'jobsPerS', 'model', 'transport', 'jobs in flight', 'jobs/s'))
  const mixed = run.results.filter((r) => r.cell.row === 'mixed').map((r) => ({ model: r.model, load: r.cell.background === undefined ? 'I/O alone' : 'I/O + CPU saturating', p99Ms: over(r, (m) => m.p99Ms).mean }))
  if (mixed.length > 0) await save('mixed-latency.svg', groupedBars('I/O p99 latency under mixed load', mixed, 'model', 'p99Ms', 'load', 'I/O p99 ms', true))
  const refs = run.references
  if (refs?.memory !== undefined) {
    await save('memory.svg', bars('Memory per waiting job', [
      { what: 'I/O job on the event loop', KiB: refs.memory.perIoJobKiB },
      { what: 'pool thread', KiB: refs.memory.perThreadMiB * 1024 }
    ], 'what', 'KiB', 'KiB (log scale)', true))
  }
  if (refs !== undefined) {
    const t = testerSweep(refs.performanceTester)
    const points = t.points.flatMap((p) => [
      { calls: p.calls, who: 'this server (Node)', how: 'event loop', seconds: p.eventLoopS },
      { calls: p.calls, who: 'this server (Node)', how: '50 threads', seconds: p.threadPoolS },
      ...(p.python === undefined
        ? []
        : [
            { calls: p.calls, who: 'the article\'s code (Python)', how: 'asyncio, as written', seconds: p.python.asyncioS },
            { calls: p.calls, who: 'the article\'s code (Python)', how: 'asyncio, no connection limit', seconds: p.python.asyncioUnlimitedS },
            { calls: p.calls, who: 'the article\'s code (Python)', how: '50 threads', seconds: p.python.threadsS }
          ])
    ])
    if (refs.offload?.autoPerS !== undefined) {
      const o = refs.offload
      const points = o.costsMs.flatMap((costMs, i) => [
        { costMs, placement: 'inline', run: 'spin', jobsPerS: o.inlinePerS[i] ?? Number.NaN },
        { costMs, placement: 'pool', run: 'spin', jobsPerS: o.poolPerS[i] ?? Number.NaN },
        { costMs, placement: 'auto', run: 'spin', jobsPerS: o.autoPerS?.[i] ?? Number.NaN }
      ])
      await save('offload.svg', lines('spin of each cost: inline, pool, auto', points, 'costMs', 'jobsPerS', 'placement', 'run', 'CPU ms per job', 'jobs/s'))
    }
    if (refs.shift !== undefined) {
      const first = refs.shift.runs[0]
      const binS = refs.shift.options.binMs / 1000
      const points = SHIFT_PLACEMENTS.flatMap((placement) =>
        (first?.binsPerS[placement] ?? []).map((perS, i) => ({ s: i * binS, placement, perS })))
      await save('shift.svg', series(`A cost that shifts: ${refs.shift.options.lowMs} ms, ${refs.shift.options.highMs} ms, ${refs.shift.options.lowMs} ms (first round)`, points, 's', 'perS', 'placement', 's', 'jobs/s'))
    }
    await save('performance-tester.svg', lines(`N calls of a ${t.delayMs} ms delay at once`, points, 'calls', 'seconds', 'how', 'who', 'calls at once', 'wall time, s'))
  }
  return written
}

/** matrix.json, matrix.md and charts/*.svg under `dir`. */
export async function writeReport (run: MatrixRun, dir: string): Promise<{
  json: string,
  markdown: string,
  charts: string[]
}> {
  await mkdir(dir, { recursive: true })
  const charts = await writeCharts(run, join(dir, 'charts'))
  const json = join(dir, 'matrix.json')
  const md = join(dir, 'matrix.md')
  await writeFile(json, JSON.stringify({ ...run, figures: figures(run) }, null, 2) + '\n')
  await writeFile(md, markdown(run, charts) + '\n')
  return { json, markdown: md, charts }
}
