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
import { availableParallelism } from 'node:os'
import { projectRoot } from '../../src/paths.js'
import { startServer } from '../../test/support/server-process.js'
import { openViews, type ViewStream } from '../../test/support/sse.js'
import { fmtSpread, fmt } from '../matrix/stats.js'
import { table } from '../matrix/report.js'
import { pair, type Drive, type Pair } from '../overhead/measure.js'
import { processTreeCpuSeconds } from '../lib/proc.js'
import { ProcessSampler } from '../../src/dashboard/sample.js'
import { performance } from 'node:perf_hooks'
import { exitCleanlyOnSignals } from '../../test/support/stop-on-signal.js'

exitCleanlyOnSignals()

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

// The same cost without the noise of a load: the server tree's CPU while idle, with no page and
// with one open (the gathering: a sample of each process a second, sent over IPC and the stream);
// and what counting one job costs, timed over a million.
progress('CPU of an idle server, without and with a page open')
const idle = await startServer({})
const cpuPerS = async (seconds: number): Promise<number> => {
  const pid = idle.proc.pid as number
  const [c0, t0] = [await processTreeCpuSeconds(pid), performance.now()]
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
  return (await processTreeCpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000)
}
let idleCpu: { without: number, with: number }
try {
  const without = await cpuPerS(10)
  const page = await openViews(idle.url)
  const withPage = await cpuPerS(10)
  page.close()
  idleCpu = { without, with: withPage }
} finally {
  await idle.stop()
}
const sampler = new ProcessSampler()
sampler.sample()
const jobs = 1_000_000
const t0 = performance.now()
for (let i = 0; i < jobs; i++) sampler.record({ task: 'fib', via: i % 2 === 0 ? 'pool' : 'inline', outcome: 'ok', totalMs: 0.2, runMs: 0.1 })
const recordNs = (performance.now() - t0) * 1e6 / jobs
sampler.stop()

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
  '',
  `Without a load, the same cost: the idle server tree used ${fmt(idleCpu.without * 1000)} ms of CPU a second with no page and ` +
  `${fmt(idleCpu.with * 1000)} ms with one open, ${fmt((idleCpu.with - idleCpu.without) * 1000)} ms a second for the page ` +
  `(${fmt((idleCpu.with - idleCpu.without) / availableParallelism() * 100)}% of the ${availableParallelism()} cores); and counting a job costs ` +
  `${fmt(recordNs)} ns (a million timed), ${fmt(recordNs * 10_000 / 1e9 * 100)}% of a core at 10,000 jobs/s.`,
  ''
].join('\n')
await writeFile(join(values.out ?? join(projectRoot, 'bench', 'results'), 'dashboard.md'), md)
console.log(md)
