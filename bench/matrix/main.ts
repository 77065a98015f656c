/**
 * `npm run bench`: the decision matrix, every model on every workload, measured in one run on this
 * machine; `-- --quick` for a run under two minutes. Progress on stderr; the report goes to
 * bench/results/ (matrix.json, matrix.md, charts/*.svg), or to `--out DIR`.
 *
 * `npm run bench -- --task NAME --input '<json>' [--concurrency 10,100,1000] [--transport http|ws]`:
 * the same for a task of your own (task.ts); its report goes to bench/results/tasks/ (or `--out`).
 *
 * `npm run bench -- --stability`: the full runs kept in bench/results/runs/ (a matrix.json each),
 * compared (stability.ts), into bench/results/stability.md (or `--out DIR`).
 *
 * `npm run bench -- --render DIR`: a run's verdict, its shift's phases and its report derived again
 * from its matrix.json by the current rules, in place; nothing is measured again, and the report
 * says when it was derived.
 */
import { availableParallelism } from 'node:os'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { parseArgs } from 'node:util'
import { projectRoot } from '../../src/paths.js'
import { makePlan } from './plan.js'
import { figures, writeReport, type MatrixRun } from './report.js'
import { runMatrix } from './run.js'
import { phases } from './shift.js'
import { rowsAcrossRuns, stabilityMarkdown } from './stability.js'
import { fmt } from './stats.js'
import { verdict, type VerdictRow } from './verdict.js'
import { runTask, TaskSpecError, taskSummary, writeTaskReport, type TaskSpec } from './task.js'
import { exitCleanlyOnSignals } from '../../test/support/stop-on-signal.js'

exitCleanlyOnSignals()

const USAGE = `npm run bench [-- --quick] [--out DIR]
npm run bench -- --task NAME --input '<json>' [--concurrency 10,100,1000] [--transport http|ws] [--quick] [--out DIR]
npm run bench -- --stability [--out DIR]
npm run bench -- --render DIR`

function fail (message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}\n`)
  process.exit(2)
}

const OPTIONS = {
  quick: { type: 'boolean' },
  out: { type: 'string' },
  task: { type: 'string' },
  input: { type: 'string' },
  concurrency: { type: 'string' },
  transport: { type: 'string' },
  stability: { type: 'boolean' },
  render: { type: 'string' }
} as const
const values = (() => {
  try {
    return parseArgs({ options: OPTIONS, strict: true }).values
  } catch (err) {
    return fail((err as Error).message)
  }
})()

const plan = makePlan(values.quick === true ? 'quick' : 'full', availableParallelism())
const started = Date.now()
const progress = (line: string): void => { process.stderr.write(`  ${Math.round((Date.now() - started) / 1000)}s ${line}\n`) }

if (values.render !== undefined) {
  const file = join(values.render, 'matrix.json')
  const run = JSON.parse(await readFile(file, 'utf8').catch(() => fail(`--render: no ${file}`))) as MatrixRun
  const again = verdict(run.results, run.machine.cores, run.plan.windowS)
  // The shift's phases too, from its bins: how auto is held to the fixed placements is a rule.
  const refs = run.references
  const references = refs?.shift === undefined
    ? refs
    : { ...refs, shift: { ...refs.shift, phases: phases(refs.shift.runs, refs.shift.options) } }
  const rendered: MatrixRun = { ...run, renderedAt: new Date().toISOString(), verdict: again, references }
  const written = await writeReport(rendered, values.render)
  for (const v of rendered.verdict) console.log(verdictLine(v))
  console.log(`report: ${written.markdown}`)
} else if (values.stability === true) {
  const runsDir = join(projectRoot, 'bench', 'results', 'runs')
  const runs: Array<{ run: MatrixRun, source: string }> = []
  for (const dir of (await readdir(runsDir).catch(() => [])).sort()) {
    const file = join(runsDir, dir, 'matrix.json')
    const run = JSON.parse(await readFile(file, 'utf8').catch(() => 'null')) as MatrixRun | null
    if (run?.plan.name === 'full') runs.push({ run, source: relative(projectRoot, file) })
  }
  if (runs.length < 2) fail(`--stability compares full runs: ${runs.length} found in ${relative(projectRoot, runsDir)}/*/matrix.json`)
  const out = values.out ?? join(projectRoot, 'bench', 'results')
  await mkdir(out, { recursive: true })
  await writeFile(join(out, 'stability.md'), stabilityMarkdown(runs.map((r) => r.run), runs.map((r) => r.source)))
  for (const r of rowsAcrossRuns(runs.map((r) => r.run))) console.log(`${r.workload}: ${r.summary.replaceAll('`', '').replaceAll('**', '')}`)
  console.log(`report: ${join(out, 'stability.md')}`)
} else if (values.task !== undefined) {
  const spec = taskSpec(values)
  process.stderr.write(`${plan.name} run: task ${spec.name} under ${plan.models.length} models, ${plan.repeats} x ${plan.windowS} s each\n`)
  let run
  try {
    run = await runTask(spec, plan, progress)
  } catch (err) {
    // A task that does not exist or an input its schema refuses: said before anything starts.
    if (err instanceof TaskSpecError) fail(err.message)
    throw err
  }
  const written = await writeTaskReport(run, values.out ?? join(projectRoot, 'bench', 'results', 'tasks'))
  for (const line of taskSummary(run)) console.log(line)
  console.log(`report: ${written.markdown}`)
} else {
  for (const only of ['input', 'concurrency', 'transport'] as const) if (values[only] !== undefined) fail(`--${only} goes with --task`)
  process.stderr.write(`${plan.name} run: ${plan.cells.length} workloads x ${plan.models.length} models, ${plan.repeats} x ${plan.windowS} s each, then the references\n`)
  const run = await runMatrix(plan, progress)
  const written = await writeReport(run, values.out ?? join(projectRoot, 'bench', 'results'))
  for (const v of run.verdict) console.log(verdictLine(v))
  for (const f of figures(run)) console.log(`${f.name}: ${f.shown ?? fmt(f.value)} (target ${f.target})${f.met === false ? ' NOT MET' : ''}`)
  console.log(`report: ${written.markdown}`)
}

function verdictLine (v: VerdictRow): string {
  const won = v.decided ? `winner ${v.winner}` : `a tie of ${v.tied.join(', ')}`
  return `${v.workload}: ${won}, recommended ${v.recommended}; the classic answer is ${v.classic}: ${v.agrees ? 'agrees' : 'DISAGREES'}`
}

/** --task, --input, --concurrency and --transport, checked. */
function taskSpec (v: typeof values): TaskSpec {
  let input: unknown = {}
  if (v.input !== undefined) {
    try {
      input = JSON.parse(v.input)
    } catch (err) {
      fail(`--input is not JSON: ${(err as Error).message}`)
    }
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) fail('--input must be a JSON object')
  let concurrency: number[] | undefined
  if (v.concurrency !== undefined) {
    concurrency = v.concurrency.split(',').map((x) => Number(x.trim()))
    if (concurrency.length === 0 || concurrency.some((n) => !Number.isInteger(n) || n < 1 || n > 10_000)) {
      fail('--concurrency must be a comma-separated list of whole numbers from 1 to 10,000')
    }
  }
  if (v.transport !== undefined && v.transport !== 'http' && v.transport !== 'ws') fail('--transport must be http or ws')
  return {
    name: v.task as string,
    input: input as Record<string, unknown>,
    ...(concurrency === undefined ? {} : { concurrency }),
    ...(v.transport === undefined ? {} : { transport: v.transport })
  }
}
