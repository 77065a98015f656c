/**
 * `npm run bench:models`: fib(N) jobs/s in each model at C concurrent clients, and each model's
 * start-up time, measured in one run on this machine, beside a direct single-thread call of the
 * same function (cores x that rate is the ceiling). Parameters from env: BENCH_N (30),
 * BENCH_CLIENTS (4), BENCH_SECONDS (5), BENCH_WARMUP_SECONDS (2). Prints a table and writes
 * bench/results/models.json.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { availableParallelism, cpus, totalmem } from 'node:os'
import { performance } from 'node:perf_hooks'
import { Client } from 'undici'
import { MODES, type Mode } from '../src/config.js'
import { projectRoot } from '../src/paths.js'
import { NO_SHEDDING, startServer } from '../test/support/server-process.js'
import { directRate } from './matrix/references.js'
import { exitCleanlyOnSignals } from '../test/support/stop-on-signal.js'

exitCleanlyOnSignals()

const n = Number(process.env.BENCH_N ?? 30)
const clients = Number(process.env.BENCH_CLIENTS ?? 4)
const seconds = Number(process.env.BENCH_SECONDS ?? 5)
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 2)

interface LoopResult { jobs: number, errors: number, seconds: number, latenciesMs: number[] }

/** `clients` closed loops, each on a connection of its own, for `durationMs`. */
async function closedLoop (url: string, durationMs: number): Promise<LoopResult> {
  const body = JSON.stringify({ task: 'fib', input: { n } })
  const result: LoopResult = { jobs: 0, errors: 0, seconds: 0, latenciesMs: [] }
  const start = performance.now()
  const deadline = start + durationMs
  await Promise.all(Array.from({ length: clients }, async () => {
    const client = new Client(url)
    try {
      while (performance.now() < deadline) {
        const sent = performance.now()
        const res = await client.request({ path: '/jobs', method: 'POST', headers: { 'content-type': 'application/json' }, body })
        await res.body.dump()
        if (res.statusCode === 200) {
          result.jobs++
          result.latenciesMs.push(performance.now() - sent)
        } else {
          result.errors++
        }
      }
    } finally {
      await client.close()
    }
  }))
  result.seconds = (performance.now() - start) / 1000
  return result
}

const quantile = (sorted: number[], q: number): number => sorted[
  Math.min(sorted.length - 1, Math.floor(q * sorted.length))
] ?? Number.NaN

async function measure (mode: Mode): Promise<Record<string, number | string>> {
  const server = await startServer({ ...NO_SHEDDING, MODE: mode })
  try {
    const line = server.logs.find((l) => l.msg === 'server listening') ?? {}
    await closedLoop(server.url, warmupSeconds * 1000)
    const r = await closedLoop(server.url, seconds * 1000)
    const sorted = r.latenciesMs.sort((a, b) => a - b)
    return {
      mode,
      processes: line.processes as number,
      threadsPerProcess: line.threadsPerProcess as number,
      startMs: Math.round(server.startMs),
      jobsPerS: Math.round(r.jobs / r.seconds * 10) / 10,
      p50Ms: Math.round(quantile(sorted, 0.5) * 10) / 10,
      p99Ms: Math.round(quantile(sorted, 0.99) * 10) / 10,
      errors: r.errors
    }
  } finally {
    await server.stop()
  }
}

const cores = availableParallelism()
process.stderr.write(`fib(${n}) at ${clients} clients, ${seconds} s per model after ${warmupSeconds} s of warm-up\n`)
const direct = directRate(3000, n)
process.stderr.write(`direct call: ${direct.toFixed(1)}/s on one thread\n`)
const rows = []
for (const mode of MODES) {
  process.stderr.write(`${mode}...\n`)
  rows.push(await measure(mode))
}
const ceiling = direct * cores
const table = rows.map((r) => ({ ...r, ofCeiling: Math.round((r.jobsPerS as number) / ceiling * 1000) / 1000 }))
console.table(table)
console.log(`ceiling: ${cores} cores x ${direct.toFixed(1)} direct calls/s = ${ceiling.toFixed(1)} jobs/s`)

const out = {
  measuredAt: new Date().toISOString(),
  machine: { cpu: cpus()[0]?.model, cores, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
  parameters: { task: 'fib', n, clients, seconds, warmupSeconds },
  directPerS: Math.round(direct * 10) / 10,
  ceilingPerS: Math.round(ceiling * 10) / 10,
  models: table
}
await mkdir(`${projectRoot}/bench/results`, { recursive: true })
await writeFile(`${projectRoot}/bench/results/models.json`, JSON.stringify(out, null, 2) + '\n')
