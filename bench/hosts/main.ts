/**
 * `npm run bench:hosts`: what `DISPATCH=bullmq` costs and what a second worker host gives, on a
 * throwaway Redis with the server and the worker hosts as separate process trees on this machine.
 *
 * 1. Per-job overhead: one job at a time (one connection, closed loop), a trivial job (fib 1) and
 *    fib 25, on the local pool (`hybrid`, one process, one thread) and through the queue (one
 *    worker host of one thread): p50 and p99, and the difference.
 * 2. Throughput of fib 25 with 8 jobs in flight: one worker host, then two (one thread each), and
 *    the local pool of one and of two threads in the same run; the CPU each process tree used.
 * 3. Redis's part: trivial jobs with 64 in flight over two hosts; Redis's CPU per job gives the jobs/s one
 *    Redis core can carry, the ceiling for any number of hosts.
 *
 * Prints the report and writes bench/results/hosts.md and hosts.json (or to `--out DIR`).
 * `-- --quick`: short windows (a smoke run; its figures are not worth committing).
 */
import { writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { projectRoot } from '../../src/paths.js'
import { startRedis, type BackendServer } from '../../test/support/backends.js'
import { startServer, type ServerProcess } from '../../test/support/server-process.js'
import { startWorkerHost, type WorkerHost } from '../../test/support/worker-host.js'
import { cpuSeconds, processTree } from '../lib/proc.js'
import { loadDefaults } from '../load/options.js'
import { runLoad, type LoadReport } from '../load/run.js'
import { exitCleanlyOnSignals } from '../../test/support/stop-on-signal.js'

exitCleanlyOnSignals()

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, out: { type: 'string' } }, strict: true })
const quick = values.quick === true
const WINDOW_S = quick ? 2 : 6
const WARMUP_S = quick ? 1 : 2
const dir = values.out ?? join(projectRoot, 'bench', 'results')

interface Setup {
  server: ServerProcess
  hosts: WorkerHost[]
}

interface Window {
  jobsPerS: number
  p50: number
  p99: number
  errors: number
  /** CPU seconds per answered job, by part. */
  cpuPerJobMs: { server: number, hosts: number, redis: number }
}

const trivial = { task: 'fib', input: { n: 1 } }
const fib25 = { task: 'fib', input: { n: 25 } }

async function setUp (queue: boolean, hosts: number, threads: number): Promise<Setup> {
  const env: Record<string, string> = queue
    ? { DISPATCH: 'bullmq', REDIS_URL: redis.url, PROCESSES: '1' }
    : { MODE: 'hybrid', PROCESSES: '1', THREADS: String(threads) }
  const started = queue
    ? await Promise.all(Array.from({ length: hosts }, async () => await startWorkerHost({ REDIS_URL: redis.url, THREADS: String(threads), LOG_LEVEL: 'info' })))
    : []
  return { server: await startServer(env), hosts: started }
}

async function tearDown ({ server, hosts }: Setup): Promise<void> {
  await Promise.all([server.stop(), ...hosts.map(async (h) => await h.stop())])
}

async function treeCpu (pids: number[]): Promise<number> {
  const all = (await Promise.all(pids.map(async (p) => await processTree(p)))).flat()
  return await cpuSeconds(all)
}

async function measure (setup: Setup, job: object, connections: number, seconds: number): Promise<Window> {
  const load = (s: number): Promise<LoadReport> => runLoad(loadDefaults(setup.server.url, {
    connections, inFlight: 1, duration: s, mix: [{ ...job, weight: 1 } as never], timeoutMs: 30_000
  }))
  await load(WARMUP_S)
  const redisPid = redis.pid() as number
  const cpu = async (): Promise<number[]> => await Promise.all([
    treeCpu([setup.server.proc.pid as number]), treeCpu(setup.hosts.map((h) => h.pid)), cpuSeconds([redisPid])
  ])
  const before = await cpu()
  const report = await load(seconds)
  const after = await cpu()
  const perJob = (i: number): number => ((after[i] as number) - (before[i] as number)) / Math.max(1, report.ok) * 1000
  return {
    jobsPerS: report.jobsPerS,
    p50: report.latencyMs.p50,
    p99: report.latencyMs.p99,
    errors: report.failed + report.timedOut,
    cpuPerJobMs: { server: perJob(0), hosts: perJob(1), redis: perJob(2) }
  }
}

async function run (queue: boolean, hosts: number, threads: number, job: object, connections: number): Promise<Window> {
  const setup = await setUp(queue, hosts, threads)
  try {
    return await measure(setup, job, connections, WINDOW_S)
  } finally {
    await tearDown(setup)
  }
}

const started = Date.now()
const step = (s: string): void => { process.stderr.write(`  ${Math.round((Date.now() - started) / 1000)}s ${s}\n`) }
const redis: BackendServer = await startRedis()
const results: Record<string, Window> = {}
try {
  for (const [name, job] of [['trivial', trivial], ['fib 25', fib25]] as const) {
    step(`one job at a time, ${name}: local pool, then the queue`)
    results[`latency ${name}, local pool`] = await run(false, 0, 1, job, 1)
    results[`latency ${name}, queue`] = await run(true, 1, 1, job, 1)
  }
  step('fib 25, 8 in flight: local pool of 1 and 2 threads, queue with 1 and 2 worker hosts')
  results['throughput fib 25, local pool, 1 thread'] = await run(false, 0, 1, fib25, 8)
  results['throughput fib 25, local pool, 2 threads'] = await run(false, 0, 2, fib25, 8)
  results['throughput fib 25, queue, 1 host'] = await run(true, 1, 1, fib25, 8)
  results['throughput fib 25, queue, 2 hosts'] = await run(true, 2, 1, fib25, 8)
  step('trivial jobs, 64 in flight, 2 worker hosts: what Redis carries')
  results['throughput trivial, queue, 2 hosts'] = await run(true, 2, 1, trivial, 64)
} finally {
  await redis.destroy()
}

const fmt = (n: number, d = 2): string => n.toLocaleString('en-US', { maximumFractionDigits: d })
const r = (k: string): Window => results[k] as Window
const lines: string[] = [
  '# `DISPATCH=bullmq`: what the queue costs, and what a second host gives',
  '',
  `${new Date().toISOString()}, \`npm run bench:hosts${quick ? ' -- --quick' : ''}\` (${Math.round((Date.now() - started) / 1000)} s), ` +
  `Node ${process.version}, ${availableParallelism()} cores. A throwaway Redis, the server (one process) and each worker host ` +
  `are separate process trees on this one machine, with the load client (\`npm run load\`'s, closed loop); each window ${WINDOW_S} s after ${WARMUP_S} s of warm-up. ` +
  'CPU per job: user + system time of each process tree over the window, divided by the jobs answered.',
  '',
  '## Per-job overhead, one job at a time',
  '',
  '| job | local pool p50 / p99 (ms) | queue p50 / p99 (ms) | overhead p50 / p99 (ms) |',
  '|---|---|---|---|'
]
for (const name of ['trivial', 'fib 25']) {
  const local = r(`latency ${name}, local pool`)
  const queued = r(`latency ${name}, queue`)
  lines.push(`| ${name} | ${fmt(local.p50)} / ${fmt(local.p99)} | ${fmt(queued.p50)} / ${fmt(queued.p99)} | ${fmt(queued.p50 - local.p50)} / ${fmt(queued.p99 - local.p99)} |`)
}
lines.push('', '## Throughput', '',
  '| setup | jobs/s | p99 (ms) | errors | CPU per job: server / worker hosts / Redis (ms) |', '|---|---|---|---|---|')
for (const key of Object.keys(results).filter((k) => k.startsWith('throughput'))) {
  const w = r(key)
  lines.push(`| ${key.replace('throughput ', '')} | ${fmt(w.jobsPerS, 0)} | ${fmt(w.p99)} | ${w.errors} | ${fmt(w.cpuPerJobMs.server, 3)} / ${fmt(w.cpuPerJobMs.hosts, 3)} / ${fmt(w.cpuPerJobMs.redis, 3)} |`)
}
const one = r('throughput fib 25, queue, 1 host')
const two = r('throughput fib 25, queue, 2 hosts')
const carry = r('throughput trivial, queue, 2 hosts')
const redisCeiling = 1000 / carry.cpuPerJobMs.redis
const serverCeiling = 1000 / carry.cpuPerJobMs.server
const perCore = 1000 / one.cpuPerJobMs.hosts
lines.push('', '## For N hosts', '',
  `Two hosts gave ${fmt(two.jobsPerS / one.jobsPerS)} x one host's fib 25 rate. On ${availableParallelism()} cores that is what the cores allow, ` +
  'not what hosts would give: the server, Redis, the load client and both hosts share the same two cores.',
  '',
  `From the measured costs: a worker host spends ${fmt(one.cpuPerJobMs.hosts, 3)} ms of CPU per fib 25 job, its thread's run ` +
  `and its event loop's BullMQ work together (${fmt(perCore, 0)} jobs/s per worker core); Redis spends ${fmt(carry.cpuPerJobMs.redis, 3)} ms per job whatever the job ` +
  `(${fmt(redisCeiling, 0)} jobs/s on its one core); a server process ${fmt(carry.cpuPerJobMs.server, 3)} ms per trivial job ` +
  `(${fmt(serverCeiling, 0)} jobs/s per server core). So N hosts of C cores each carry about min(N x C x ${fmt(perCore, 0)}, ` +
  `${fmt(redisCeiling, 0)}, server processes x ${fmt(serverCeiling, 0)}) fib 25 jobs/s: Redis is the ceiling from about ` +
  `${fmt(redisCeiling / perCore, 0)} worker cores on, and sooner for shorter jobs (its cost per job does not shrink with the job).`)
const md = lines.join('\n') + '\n'
await writeFile(join(dir, 'hosts.md'), md)
await writeFile(join(dir, 'hosts.json'), JSON.stringify({ at: new Date().toISOString(), node: process.version, cores: availableParallelism(), windowS: WINDOW_S, results }, null, 2) + '\n')
console.log(md)
