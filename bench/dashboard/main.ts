/**
 * `npm run bench:dashboard`: what an open dashboard costs the server. Two servers with the
 * defaults, alike but for a page's stream (GET /dashboard/events, read as a browser would) open on
 * one of them throughout; the same load on each in alternating windows, by two clients (the
 * project's load client and autocannon). A rate counts answered jobs only. Writes
 * bench/results/dashboard.md (or to `--out DIR`).
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { projectRoot } from '../../src/paths.js'
import { startServer } from '../../test/support/server-process.js'
import { openViews, type ViewStream } from '../../test/support/sse.js'
import { fmtSpread, fmt } from '../matrix/stats.js'
import { table } from '../matrix/report.js'
import { pair, type Drive, type Pair } from '../overhead/measure.js'

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, out: { type: 'string' } }, strict: true })
const plan = values.quick === true ? { rounds: 1, windowS: 2, warmupS: 1 } : { rounds: 3, windowS: 3, warmupS: 2 }
const started = Date.now()
const progress = (step: string): void => { process.stderr.write(`  ${Math.round((Date.now() - started) / 1000)}s ${step}\n`) }

const drives: Array<[string, Drive]> = [
  // The cheapest job there is: where a cost per job (the counting) shows most.
  ['fib n=1, 50 connections', { connections: 50, path: '/jobs', body: { task: 'fib', input: { n: 1 } } }],
  ['fib n=25 on the pool, 8 connections', { connections: 8, path: '/jobs', body: { task: 'fib', input: { n: 25 } } }]
]
const pairs: Pair[] = []
const viewsSeen: number[] = []
for (const [name, drive] of drives) {
  progress(name)
  let stream: ViewStream | undefined
  pairs.push(...await pair(name, {
    reference: async () => await startServer({}),
    ours: async () => {
      const server = await startServer({})
      stream = await openViews(server.url)
      return server
    }
  }, drive, plan))
  viewsSeen.push(stream?.views.length ?? 0)
  stream?.close()
}

const rows = pairs.map((p) =>
  [p.name, p.client, fmtSpread(p.reference), fmtSpread(p.ours), fmt(p.ours.mean / p.reference.mean)])
const md = [
  '# What an open dashboard costs the server',
  '',
  `${new Date().toISOString()}, \`npm run bench:dashboard${values.quick === true ? ' -- --quick' : ''}\` (${Math.round((Date.now() - started) / 1000)} s), ` +
  `Node ${process.version}. Two servers with the defaults (\`MODE=hybrid\`), one of them with a page's stream open throughout ` +
  `(it got ${viewsSeen.join(' and ')} views); the same load on each in alternating windows, ${plan.rounds} x ${plan.windowS} s per server and client ` +
  `after ${plan.warmupS} s of warm-up. Answered jobs/s, the mean with (min-max). The target: with a page open, >= 0.98 of without.`,
  '',
  table(['load', 'client', 'no page', 'a page open', 'ratio'], rows),
  ''
].join('\n')
await writeFile(join(values.out ?? join(projectRoot, 'bench', 'results'), 'dashboard.md'), md)
console.log(md)
