/**
 * `npm run bench`: the decision matrix, every model on every workload, measured in one run on this
 * machine; `-- --quick` for a run under two minutes. Progress on stderr; the report goes to
 * bench/results/ (matrix.json, matrix.md, charts/*.svg), or to `--out DIR`.
 */
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { projectRoot } from '../../src/paths.js'
import { makePlan } from './plan.js'
import { figures, writeReport } from './report.js'
import { runMatrix } from './run.js'
import { fmt } from './stats.js'

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, out: { type: 'string' } }, strict: true })
const plan = makePlan(values.quick === true ? 'quick' : 'full', availableParallelism())
const dir = values.out ?? join(projectRoot, 'bench', 'results')
const started = Date.now()
process.stderr.write(`${plan.name} run: ${plan.cells.length} workloads x ${plan.models.length} models, ${plan.repeats} x ${plan.windowS} s each, then the references\n`)
const run = await runMatrix(plan, (line) => process.stderr.write(`  ${Math.round((Date.now() - started) / 1000)}s ${line}\n`))
const written = await writeReport(run, dir)

for (const v of run.verdict) console.log(`${v.workload}: winner ${v.winner}, recommended ${v.recommended}; the classic answer is ${v.classic}: ${v.agrees ? 'agrees' : 'DISAGREES'}`)
for (const f of figures(run)) console.log(`${f.name}: ${fmt(f.value)} (target ${f.target})${f.met === false ? ' NOT MET' : ''}`)
console.log(`report: ${written.markdown}`)
