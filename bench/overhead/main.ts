/**
 * `npm run bench:overhead`: the figures this server holds itself to against the servers a user
 * could write in twenty lines, measured now, with two clients (`-- --quick`: one short round).
 * Prints the table; writes bench/results/overhead.json and overhead.md (or to `--out DIR`).
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { projectRoot } from '../../src/paths.js'
import { figuresTable, overheadFigures } from './figures.js'
import { measureOverhead, OVERHEAD_PLAN, warmUpText } from './measure.js'
import { exitCleanlyOnSignals } from '../../test/support/stop-on-signal.js'

exitCleanlyOnSignals()

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, out: { type: 'string' } }, strict: true })
const plan = values.quick === true ? { rounds: 1, windowS: 2, warmupS: 1, jitWarmupS: 1 } : OVERHEAD_PLAN
const dir = values.out ?? join(projectRoot, 'bench', 'results')
const started = Date.now()
const run = await measureOverhead(plan, (step) => process.stderr.write(`  ${Math.round((Date.now() - started) / 1000)}s ${step}\n`))
const figures = overheadFigures(run)
const seconds = Math.round((Date.now() - started) / 1000)
const md = [
  '# What this server costs: the figures it holds itself to',
  '',
  `${run.at}, \`npm run bench:overhead${values.quick === true ? ' -- --quick' : ''}\` (${seconds} s), Node ${run.node}, ${run.cores} cores. ` +
  `Each pair alternates windows (reference, this server, ...): ${plan.rounds} x ${plan.windowS} s per server and client, after ${warmUpText(plan)}; ` +
  'a ratio is the median of the rounds\' ratios (each round: the two windows back to back), a rate the mean with (min-max). Rates count answered jobs only; where a server refused jobs (503 OVERLOADED), the figure says how many per s, this server\'s / the reference\'s. Every server runs with its defaults. ' +
  'Both clients run on the same 2 cores as the servers they measure.',
  '',
  figuresTable(figures),
  ''
].join('\n')
await mkdir(dir, { recursive: true })
await writeFile(join(dir, 'overhead.json'), JSON.stringify({ ...run, figures }, null, 2) + '\n')
await writeFile(join(dir, 'overhead.md'), md)
console.log(figuresTable(figures))
