/**
 * `npm run profile:layers`: where each microsecond of a request goes. Starts a one-process server
 * under V8's sampling profiler (--cpu-prof) for each scenario (`GET /health`, a trivial inline job,
 * a trivial pool job), drives it with autocannon (50 connections, PROFILE_SECONDS each, 5 by
 * default), stops it, and reads the profile: self time per layer divided by the requests answered
 * is that layer's cost per request. The references, profiled the same way: plain Fastify for
 * `/health` and the inline job, the naive server for the pool job. `--rounds` times over (3 by
 * default), the scenarios in turn; prints a Markdown table of the medians and writes
 * bench/results/layers.json.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { projectRoot } from '../../src/paths.js'
import { startServer } from '../../test/support/server-process.js'
import { median } from '../matrix/stats.js'
import { LAYERS, type Layer } from './classify.js'
import { busiestProfile, busyOf } from './profiles.js'
import { exitCleanlyOnSignals } from '../../test/support/stop-on-signal.js'

exitCleanlyOnSignals()

interface Scenario {
  name: string
  env: Record<string, string>
  file?: string
  request: { method: 'GET' | 'POST', path: string, body?: string }
  /** A second reference besides plain Fastify's scenario of the same request, by name. */
  reference?: string
  /** A cluster's processes, each writing a profile (the primary's and its worker's): the busiest is read. */
  profiles?: number
}

const plainFastify = `${projectRoot}/dist/bench/matrix/servers/plain-fastify.js`
/**
 * The trivial pool job's reference: the naive cluster + Fastify + Piscina server (the matrix's own
 * reference for the CPU rows), one worker process with as many pool threads as this server's.
 */
const naive = `${projectRoot}/dist/bench/matrix/servers/naive.js`

// `--server FILE` profiles another build of this server (an earlier commit's dist/src/server.js,
// to compare before and after a change); `--out FILE` writes the JSON there.
const { values: args } = parseArgs({ options: { server: { type: 'string' }, out: { type: 'string' }, env: { type: 'string' }, rounds: { type: 'string' } }, strict: true })
const ours = args.server
// `--env JSON`: more variables for this server's scenarios (not the references').
const extra = JSON.parse(args.env ?? '{}') as Record<string, string>
const trivialJob = JSON.stringify({ task: 'fib', input: { n: 1 } })
const NAIVE_JOB = 'naive server, trivial pool job (1 process)'
const SCENARIOS: Scenario[] = [
  { name: 'plain Fastify, GET /health', env: {}, file: plainFastify, request: { method: 'GET', path: '/health' } },
  { name: 'plain Fastify, trivial job with a body schema', env: {}, file: plainFastify, request: { method: 'POST', path: '/jobs', body: trivialJob } },
  { name: NAIVE_JOB, env: { PROCESSES: '1' }, file: naive, request: { method: 'POST', path: '/jobs', body: trivialJob }, profiles: 2 },
  { name: 'GET /health (event-loop)', env: { MODE: 'event-loop', ...extra }, file: ours, request: { method: 'GET', path: '/health' } },
  { name: 'trivial inline job (event-loop)', env: { MODE: 'event-loop', ...extra }, file: ours, request: { method: 'POST', path: '/jobs', body: trivialJob } },
  {
    name: 'trivial pool job (hybrid, 1 process)',
    env: { MODE: 'hybrid', PROCESSES: '1', ...extra },
    file: ours,
    request: { method: 'POST', path: '/jobs', body: trivialJob },
    reference: NAIVE_JOB
  }
]

async function profileScenario (scenario: Scenario, seconds: number): Promise<{
  requests: number,
  non2xx: number,
  perRequestUs: Record<Layer,
  number>
}> {
  const dir = await mkdtemp(join(tmpdir(), 'cpu-prof-'))
  const server = await startServer(scenario.env, 20_000, scenario.file, ['--cpu-prof', `--cpu-prof-dir=${dir}`])
  try {
    const run = (duration: number): Promise<autocannon.Result> => autocannon({
      url: `${server.url}${scenario.request.path}`,
      method: scenario.request.method,
      headers: { 'content-type': 'application/json' },
      body: scenario.request.body,
      connections: 50,
      duration
    })
    const warm = await run(1) // profiled too: its requests count in the division
    const result = await run(seconds)
    await server.stop()
    const totals = await busiestProfile(dir, scenario.profiles ?? 1)
    if (totals === undefined) throw new Error(`the server wrote no profile (exit ${String(server.proc.exitCode)}): ${server.stderr()}`)
    const requests = result.requests.total + warm.requests.total
    const perRequestUs = Object.fromEntries(
      LAYERS.map((l) => [l, Math.round(totals[l] / requests * 10) / 10])
    ) as Record<Layer, number>
    return { requests, non2xx: result.non2xx, perRequestUs }
  } finally {
    await server.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

const seconds = Number(process.env.PROFILE_SECONDS ?? 5)
// `--rounds N`: every scenario profiled N times, the scenarios in a new order each round. The
// machine's speed moves by tens of percent within a minute here: one profile of each, one after
// another, once put plain Fastify's `/health` above this server's. A layer's figure is its median
// over the rounds, and each ratio to plain Fastify is taken within a round, then the median.
const rounds = Math.max(1, Number(args.rounds ?? 3))
if (!Number.isInteger(rounds)) throw new Error(`--rounds: a whole number, not ${String(args.rounds)}`)
type Profiled = Awaited<ReturnType<typeof profileScenario>>
const byScenario: Profiled[][] = SCENARIOS.map(() => [])
for (let r = 0; r < rounds; r++) {
  for (let k = 0; k < SCENARIOS.length; k++) {
    const i = (k + r) % SCENARIOS.length
    const s = SCENARIOS[i] as Scenario
    process.stderr.write(`round ${r + 1} of ${rounds}: profiling ${s.name} for ${seconds} s\n`)
    byScenario[i]?.push(await profileScenario(s, seconds))
  }
}
const round1 = (v: number): number => Math.round(v * 10) / 10
/** All but idle and start-up: the CPU a request cost the main thread. */
const busyUs = (p: Profiled): number => busyOf(p.perRequestUs)
/** This scenario's reference: plain Fastify's scenario of the same request, `/health` or the job. */
const referenceOf = (s: Scenario): number =>
  SCENARIOS.findIndex((r) => r.file === plainFastify && r.request.path === s.request.path)
/** Busy µs per request against a reference's in the same round, the median over the rounds. */
const against = (runs: Profiled[], reference: Profiled[]): number =>
  Math.round(median(runs.map((p, r) => busyUs(p) / busyUs(reference[r] as Profiled))) * 100) / 100
const results = SCENARIOS.map((s, i) => {
  const runs = byScenario[i] as Profiled[]
  const second = SCENARIOS.findIndex((r) => r.name === s.reference)
  return {
    name: s.name,
    requests: runs.reduce((a, p) => a + p.requests, 0),
    non2xx: runs.reduce((a, p) => a + p.non2xx, 0),
    perRequestUs: Object.fromEntries(
      LAYERS.map((l) => [l, round1(median(runs.map((p) => p.perRequestUs[l])))])
    ) as Record<Layer, number>,
    busyUs: round1(median(runs.map(busyUs))),
    againstPlain: against(runs, byScenario[referenceOf(s)] as Profiled[]),
    /** Against the scenario's second reference (the naive server, for the pool job), when it has one. */
    against: second < 0 ? undefined : { name: s.reference, ratio: against(runs, byScenario[second] as Profiled[]) },
    rounds: runs
  }
})
const header = `| layer | ${results.map((r) => r.name).join(' | ')} |`
const lines = [header, `|---|${results.map(() => '---').join('|')}|`]
for (const layer of LAYERS) if (layer !== 'start-up (loading modules)') lines.push(`| ${layer} | ${results.map((r) => r.perRequestUs[layer]).join(' | ')} |`)
lines.push(`| **all but idle** | ${results.map((r) => r.busyUs).join(' | ')} |`)
lines.push(`| **against plain Fastify, same round** | ${results.map((r) => r.againstPlain).join(' | ')} |`)
lines.push(`| **against its second reference, same round** | ${results.map((r) => r.against === undefined ? '' : `${r.against.ratio} (${String(r.against.name)})`).join(' | ')} |`)
lines.push(`| **requests (non-2xx), all rounds** | ${results.map((r) => `${r.requests} (${r.non2xx})`).join(' | ')} |`)
console.log(`µs of CPU per request on the server's main thread, by layer (V8 sampling profiler, 1 + ${seconds} s each, autocannon 50 connections; ` +
  `start-up left out; the median of ${rounds} round${rounds > 1 ? 's' : ''})\n`)
console.log(lines.join('\n'))
await writeFile(args.out ?? join(projectRoot, 'bench/results/layers.json'), JSON.stringify({ at: new Date().toISOString(), node: process.version, server: ours ?? 'this build', env: extra, seconds, rounds, results }, null, 2) + '\n')
