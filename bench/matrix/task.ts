/**
 * `npm run bench -- --task NAME --input '<json>'`: the matrix for a workload of the user's own. The
 * task is a module dropped into cpu-tasks/ or io-tasks/ (built to dist/ with the rest); every model
 * runs it on a fresh server, the same way the built-in rows run theirs, at each concurrency asked
 * for; each point gets a verdict by the same rule, and the run one recommendation.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Mode } from '../../src/config.js'
import { TaskRegistry } from '../../src/tasks/registry.js'
import type { TaskKind } from '../../src/tasks/types.js'
import { startDelayService } from '../../src/upstream/spawn.js'
import { runRow, type CellResult } from './cell.js'
import type { CellSpec, Plan } from './plan.js'
import { cellRow, CELL_HEAD, table, type Machine } from './report.js'
import { machine, userBackends } from './run.js'
import { fmt } from './stats.js'
import { decide, JOBS_PER_S, limits, type Decision } from './verdict.js'

export interface TaskSpec {
  name: string
  input: Record<string, unknown>
  /** Jobs in flight at each point; by default, for a CPU task 8 per core, for an I/O task 10, 100 and 1,000. */
  concurrency?: readonly number[]
  /** By default HTTP for a CPU task (as the CPU row), WebSocket for an I/O task (as the sweep). */
  transport?: 'http' | 'ws'
}

export interface TaskPoint extends Decision {
  inFlight: number
}

export interface TaskRun {
  measuredAt: string
  durationS: number
  machine: Machine
  plan: Plan
  task: { name: string, kind: TaskKind, input: Record<string, unknown>, transport: 'http' | 'ws' }
  results: CellResult[]
  points: TaskPoint[]
  recommended: { model: Mode, why: string }
}

/** A task that is not there, or an input its schema refuses. */
export class TaskSpecError extends Error {}

/** The task's kind, its input checked by its own schema as the server will check it. */
export async function resolveTask (spec: Pick<TaskSpec, 'name' | 'input'>): Promise<{ kind: TaskKind, usesBackends: boolean }> {
  const registry = await TaskRegistry.load()
  if (registry.get(spec.name) === undefined) {
    throw new TaskSpecError(`no task "${spec.name}" in dist/cpu-tasks or dist/io-tasks (known: ${registry.catalogue.map((t) => t.name).join(', ')}); ` +
      'a task file dropped into cpu-tasks/ or io-tasks/ is built by npm run bench')
  }
  try {
    const { task } = registry.resolve({ task: spec.name, input: spec.input })
    return { kind: task.kind, usesBackends: task.usesBackends === true }
  } catch (err) {
    throw new TaskSpecError(`--input: ${(err as Error).message}`)
  }
}

/** One cell per point: closed loop, `n` jobs in flight, as the CPU row (HTTP) or the sweep (WebSocket) sends them. */
export function taskCells (spec: TaskSpec, kind: TaskKind, cores: number): CellSpec[] {
  const transport = spec.transport ?? (kind === 'cpu' ? 'http' : 'ws')
  const points = spec.concurrency ?? (kind === 'cpu' ? [8 * cores] : [10, 100, 1000])
  const mix = [{ task: spec.name, input: spec.input, weight: 1 }]
  return points.map((n) => {
    // HTTP: a connection per job in flight (Node answers pipelined requests one at a time).
    const connections = transport === 'ws' ? Math.min(10, n) : n
    return {
      id: `task ${spec.name} ${transport} ${n}`,
      row: 'task',
      inFlight: n,
      // CPU jobs are waited for at a window's end, as the CPU row's are: cancelling one costs its thread.
      load: { transport, connections, inFlight: Math.ceil(n / connections), mix, ...(kind === 'cpu' ? { cut: false } : {}) }
    }
  })
}

/**
 * The recommendation over every point: a model recommended at every point, or else the one tied
 * for the best at the most points, the highest concurrency breaking the tie (where models part).
 */
export function recommend (points: TaskPoint[]): { model: Mode, why: string } {
  const counts = new Map<Mode, number>()
  for (const p of points) for (const m of p.tied) counts.set(m, (counts.get(m) ?? 0) + 1)
  const last = points[points.length - 1] as TaskPoint
  const everywhere = points.every((p) => p.recommended === last.recommended)
  if (everywhere) {
    return { model: last.recommended, why: `recommended at every point measured (${points.map((p) => p.inFlight.toLocaleString('en-US')).join(', ')} in flight)` }
  }
  const top = Math.max(...counts.values())
  const best = [...counts].filter(([, n]) => n === top).map(([m]) => m)
  const model = best.includes(last.recommended) ? last.recommended : best[0] as Mode
  return {
    model,
    why: `the best or tied for it at ${top} of ${points.length} points; ` +
      points.map((p) => `at ${p.inFlight.toLocaleString('en-US')} in flight ${p.decided ? `\`${p.winner}\` won` : `a tie of ${p.tied.map((m) => `\`${m}\``).join(', ')}`}`).join('; ')
  }
}

/** Every model on the task at each point, each on a fresh server; then the verdicts. */
export async function runTask (spec: TaskSpec, plan: Plan, progress: (line: string) => void): Promise<TaskRun> {
  const started = performance.now()
  const { kind, usesBackends } = await resolveTask(spec)
  const m = machine()
  const cells = taskCells(spec, kind, m.cores)
  const upstream = await startDelayService()
  const backends = usesBackends ? await userBackends(progress) : undefined
  try {
    progress(`${spec.name} at ${cells.map((c) => c.inFlight).join(', ')} in flight: ${plan.models.join(', ')}, alternated`)
    const { results } = await runRow(plan.models, cells, plan, upstream.url, backends?.env)
    const points: TaskPoint[] = []
    for (const cell of cells) {
      const atPoint = results.filter((r) => r.cell.id === cell.id)
      const d = decide(atPoint, JOBS_PER_S)
      if (d !== undefined) points.push({ inFlight: cell.inFlight ?? 0, ...d, reason: `${d.reason} ${limits(atPoint, m.cores, plan.windowS)}` })
    }
    if (points.length === 0) throw new Error('no model answered a job of this task')
    return {
      measuredAt: new Date().toISOString(),
      durationS: Math.round((performance.now() - started) / 1000),
      machine: m,
      plan: { ...plan, cells },
      task: { name: spec.name, kind, input: spec.input, transport: cells[0]?.load.transport as 'http' | 'ws' },
      results,
      points,
      recommended: recommend(points)
    }
  } finally {
    await Promise.all([upstream.stop(), backends?.destroy()])
  }
}

export function taskMarkdown (run: TaskRun): string {
  const { task, machine: mc, plan } = run
  const out: string[] = []
  out.push(`# \`${task.name}\` under every model\n`)
  out.push(`${run.measuredAt}, \`npm run bench -- --task ${task.name} --input '${JSON.stringify(task.input)}'${plan.name === 'quick' ? ' --quick' : ''}\` ` +
    `(${plan.name} run, ${run.durationS} s): ${mc.cpu}, ${mc.cores} cores, Node ${mc.node}. A ${task.kind.toUpperCase()} task, ` +
    `closed loop over ${task.transport === 'ws' ? 'WebSocket' : 'HTTP'}; each model on a fresh server, each point warmed up until its throughput settles, ` +
    `then measured ${plan.repeats} time${plan.repeats > 1 ? 's' : ''} for ${plan.windowS} s.\n`)
  out.push(`**Recommended: \`${run.recommended.model}\`**, ${run.recommended.why}.\n`)
  out.push('## Verdict per point\n')
  out.push(table(['in flight', 'winner', 'recommended', 'why'], run.points.map((p) => [
    p.inFlight.toLocaleString('en-US'),
    p.decided ? `\`${p.winner}\`` : `tie: ${p.tied.map((m) => `\`${m}\``).join(', ')}`,
    `\`${p.recommended}\``,
    p.reason
  ])))
  out.push('\nA winner is named only where the runner-up is outside its spread and more than 5% behind; else a tie, broken by p99, then peak memory.\n')
  for (const p of run.points) {
    out.push(`## ${p.inFlight.toLocaleString('en-US')} in flight\n`)
    out.push(table(CELL_HEAD, run.results.filter((r) => r.cell.inFlight === p.inFlight).map(cellRow)))
    out.push('')
  }
  return out.join('\n')
}

/** task-NAME.json and task-NAME.md under `dir`. */
export async function writeTaskReport (run: TaskRun, dir: string): Promise<{ json: string, markdown: string }> {
  await mkdir(dir, { recursive: true })
  const json = join(dir, `task-${run.task.name}.json`)
  const markdown = join(dir, `task-${run.task.name}.md`)
  await writeFile(json, JSON.stringify(run, null, 2) + '\n')
  await writeFile(markdown, taskMarkdown(run) + '\n')
  return { json, markdown }
}

/** The lines the command prints: the recommendation and the figures that decided it. */
export function taskSummary (run: TaskRun): string[] {
  return [
    `${run.task.name}: recommended ${run.recommended.model} (${run.recommended.why})`,
    ...run.points.map((p) => `  ${p.inFlight.toLocaleString('en-US')} in flight: ${p.decided ? `winner ${p.winner}` : `tie of ${p.tied.join(', ')}`}, ` +
      `recommended ${p.recommended}. ${p.reason.replaceAll('`', '')}`),
    `  jobs/s: ${run.points.map((p) => `${p.inFlight}: ${run.results.filter((r) => r.cell.inFlight === p.inFlight)
      .map((r) => `${r.model} ${fmt(r.runs.reduce((a, x) => a + x.jobsPerS, 0) / Math.max(1, r.runs.length))}`).join(', ')}`).join(' | ')}`
  ]
}
