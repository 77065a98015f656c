/**
 * `npm run chaos`: the fault run. Starts real servers, throws at them every bad input of the table,
 * twice their sustainable load, faults on their pool threads, SIGKILLs, a SIGTERM and a SIGHUP
 * under load, and prints what happened as a table (also written to bench/results/chaos.md and
 * chaos.json). Bounded: about 5 minutes on 2 cores (`--quick` about 4); every server it starts, it stops.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startServer } from '../../test/support/server-process.js'
import { projectRoot } from '../../src/paths.js'
import { measureIterationsPerMs } from '../../cpu-tasks/spin.js'
import { TRIVIAL_JOB } from '../load/options.js'
import { JIT_WARMUP } from '../overhead/measure.js'
import type { CoresBusy } from '../lib/proc.js'
import {
  BACKOFF_PAUSES_MS, badInputs, drainUnderLoad, JIT_WARMUP_S, killLoop, overload, OVERLOAD_RAMP_S,
  rollingRestartUnderLoad, saturation, threadFaults,
  type ClientTally, type OverloadJob
} from './scenarios.js'
import { exitCleanlyOnSignals } from '../../test/support/stop-on-signal.js'

exitCleanlyOnSignals()

const { values: args } = parseArgs({ options: { out: { type: 'string', default: join(projectRoot, 'bench', 'results') }, quick: { type: 'boolean', default: false } } })
const overloadS = args.quick === true ? 3 : 6

const pct = (x: number): string => `${(x * 100).toFixed(x === 1 || x === 0 ? 0 : 2)}%`
const began = Date.now()
const log = (line: string): void => { process.stderr.write(`chaos ${((Date.now() - began) / 1000).toFixed(1)} s: ${line}\n`) }

log('bad inputs over HTTP JSON, HTTP MessagePack, WebSocket')
const target = await startServer({ MODE: 'hybrid', PROCESSES: '2', WS_MAX_FRAME_BYTES: '65536' })
const bad = await badInputs(target.url).finally(() => target.stop())

log(`overload: sustainable rate, then 0.8 and 2 times it for ${overloadS} s, per configuration and job`)
// Every server of the overload does the same work per ms of `spin`: measured by each of its threads,
// it differs by up to 16% between threads, and a goodput would compare two servers' works.
const spinIterationsPerMs = Math.round(measureIterationsPerMs())
const pinned = { SPIN_ITERATIONS_PER_MS: String(spinIterationsPerMs) }
const trivial: OverloadJob = { label: 'trivial (fib 1)', ...TRIVIAL_JOB, connections: 50 }
const overloads = [
  ...await overload('event-loop', { MODE: 'event-loop', ...pinned }, trivial, [0.8, 2], overloadS),
  ...await overload('event-loop', { MODE: 'event-loop', ...pinned }, { label: 'spin 1 ms, inline', task: 'spin', input: { ms: 1 }, connections: 8 }, [0.8, 2], overloadS),
  ...await overload('hybrid', { MODE: 'hybrid', ...pinned }, trivial, [0.8, 2], overloadS),
  ...await overload('hybrid', { MODE: 'hybrid', ...pinned }, { label: 'spin 5 ms, pool', task: 'spin', input: { ms: 5 }, connections: 8 }, [0.8, 2], overloadS)
]
const saturated = [await saturation('event-loop', { MODE: 'event-loop' }, 3), await saturation('hybrid', { MODE: 'hybrid' }, 3)]

log('thread faults: throw, process.exit, out of heap, endless loop')
const faults = await threadFaults(args.quick === true ? 2 : 5)

log('SIGKILL loops under load: slower, then faster than a worker is replaced')
const killCount = args.quick === true ? 3 : 6
const kills = await killLoop(killCount, 1500)
const fastKills = await killLoop(killCount, 400)
// What a client does about a kill loop faster than replacement: retries spread over a worker's start.
const fastKillsBackoff = await killLoop(killCount, 400, 8, BACKOFF_PAUSES_MS)

log('SIGTERM and SIGHUP under load')
const drain = await drainUnderLoad(400)
const rolling = await rollingRestartUnderLoad()

const lines: string[] = []
const table = (head: string[], rows: Array<Array<string | number>>): void => {
  lines.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`), '')
}

lines.push('## Bad inputs', '')
table(['sent', 'answered as the table expects', 'by status (WebSocket: by code)', 'served normally after'], [[
  bad.sent, bad.asExpected, Object.entries(bad.byStatus).sort().map(([k, v]) => `${k}: ${v}`).join(', '), bad.servedAfter ? 'yes' : 'NO'
]])
if (bad.unexpected.length > 0) lines.push('Unexpected:', ...bad.unexpected.map((u) => `- ${u}`), '')

lines.push('## Overload (open loop at 0.8 and 2 times the sustainable rate; defaults: shedding by queueing delay)', '')
const split = (c: CoresBusy): string => [c.loops, c.rest, c.client].map((x) => x.toFixed(2)).join(' / ')
table(['configuration', 'job', 'x sustainable', 'sustainable jobs/s (before / after)', 'offered / sent jobs/s', 'admitted jobs/s (goodput)', 'shed (503)', 'other errors', 'not sent (client full)', 'admitted p50 / p99 ms', 'shed answer p99 ms', 'server\'s own p99 ms: admitted / shed', 'sent late p99 ms', 'cores at the sustainable rate: loops / rest / client', 'cores in the run: loops / rest / client', 'server CPU ms per answered job: sustainable / run'],
  overloads.map((o) => [o.model, o.job, o.factor, `${o.sustainablePerS} (${o.sustainableEachPerS.join(' / ')})`, `${o.offeredPerS} / ${o.sentPerS}`, `${o.admittedPerS} (${o.goodput.toFixed(2)})`, pct(o.shedShare), o.otherErrors, o.skipped, `${o.admittedP50Ms} / ${o.admittedP99Ms}`, o.shedShare === 0 ? '-' : o.shedP99Ms,
    `${o.admittedServerP99Ms ?? '-'} / ${o.shedServerP99Ms ?? '-'}`, o.sentLateP99Ms ?? '-',
    split(o.cores.sustainable), split(o.cores.run), `${o.serverCpuMsPerJob.sustainable.toFixed(3)} / ${o.serverCpuMsPerJob.run.toFixed(3)}`]))
lines.push(`Every server here is fresh and first answers ${JIT_WARMUP_S} s of trivial jobs (\`fib\` n=1) from ${JIT_WARMUP.connections} connections, so that V8 has compiled its request path, then 1 s of its row's own load. The sustainable rate is measured on the same configuration with shedding and the queue bound off (closed loop, 3 s), just before each open loop and just after it: the open loop's rate is a factor of the one before, its goodput is against the mean of the two (a shared machine's speed moves by half within tens of seconds). Each open-loop run lasts ${overloadS} s after an onset of ${OVERLOAD_RAMP_S} s that is not counted; 400 connections, one job in flight each. The load client runs on the same cores as the server, and with trivial jobs it cannot always send what it is asked to (offered / sent). Each latency runs from the job's intended send time; "server's own" is the server's Server-Timing total (an admitted job's time from admission to its result, a refusal's from the request's first byte), and "sent late" how far past its intended time the client's own loop sent a job: what lies between is the client's lateness, the sockets, and the time a request waited for its server's loop to read it. The cores columns say where the machine's time went, from /proc (the server's processes) and the bench's own CPU (the load client runs in it): "loops" the server's event loops (each process's main thread), "rest" the rest of its tree (pool threads, V8's helpers, the delay service), over the two closed loops that measured the sustainable rate around the run and over the open loop after its onset; a run that answers fewer jobs than the sustainable rate with the same cores busy spent them on the refusals, in the loops and in the client. The server's CPU per answered job counts what its refusals cost too. Every server here does the same work per ms of \`spin\`: \`SPIN_ITERATIONS_PER_MS=${spinIterationsPerMs}\`, measured once by the bench.`, '')
lines.push('Closed-loop saturation, 50 clients of trivial jobs, 3 s (a busy loop that is on time is not shed):', '')
table(['configuration', 'jobs/s', 'shed (503)', 'p99 ms'], saturated.map((s) => [s.model, Math.round(s.jobsPerS), s.shed, s.p99Ms]))

lines.push('## Thread faults (hybrid, one process, 2 pool threads, THREAD_HEAP_MB=64, JOB_TIMEOUT_MS=1000)', '')
table(['fault', 'sent', 'answered'], Object.entries(faults.faults).map(([mode, f]) => [mode, f.sent, Object.entries(f.answered).map(([c, n]) => `${c}: ${n}`).join(', ')]))
lines.push(`Normal jobs sent beside the faults: ${faults.normalJobs}, answered 200: ${faults.normalOk}; pool threads after: ${faults.poolThreadsAfter}; recovered (same process serving): ${faults.recovered ? 'yes' : 'NO'}.`, '')

lines.push('## Process faults and restarts (closed-loop clients, a new connection per job)', '')
const failedText = (t: ClientTally): string => t.failed === 0 ? '0' : `${t.failed} (${t.failedRefused} refused, ${t.failedLost} lost)`
table(['scenario', 'retries after', 'requests', 'ok first try', 'ok on a retry', 'failed (last try: refused, lost)', 'first tries refused', 'first tries lost (accepted, never answered)', 'other', 'no worker alive'], [
  ...[kills, fastKills, fastKillsBackoff].map((k) => [
    `${k.kills} x SIGKILL of a worker, one every ${k.everyMs} ms, ${k.replaced} replaced`,
    k.retryPausesMs.map((ms) => `${ms} ms`).join(', '),
    k.tally.requests, `${k.tally.okFirstTry} (${pct(k.firstTryRate)})`, `${k.tally.okOnRetry} (in all: ${pct(k.withRetryRate)})`,
    failedText(k.tally), k.tally.refused, k.tally.lost, k.tally.errorStatus,
    `${k.noWorkerMs} ms in ${k.noWorkerStretches} stretches; a replacement listens ${k.replacementMs.median} ms (max ${k.replacementMs.max}) after its death`
  ]),
  [`SIGTERM drain (16 clients, sleep 400 ms jobs), exit ${drain.exitCode} after ${drain.ms} ms`, 'none', drain.tally.requests, drain.tally.okFirstTry, '-', failedText(drain.tally), drain.tally.refused, drain.tally.lost, drain.tally.errorStatus, '-'],
  [`SIGHUP rolling restart (8 clients), done in ${rolling.ms} ms`, 'none', rolling.tally.requests, rolling.tally.okFirstTry, '-', failedText(rolling.tally), rolling.tally.refused, rolling.tally.lost, rolling.tally.errorStatus, '-']
])
lines.push('A job lost with its worker is one the primary had handed to it as it was killed (the client sees a 2 s timeout): SIGKILL takes what a process holds, and only a retry brings it back. ' +
  'Killing faster than a replacement starts leaves stretches with no worker at all (last column, from the primary\'s log): node:cluster\'s round-robin handle closes the listening socket when its last worker leaves, ' +
  'and the next worker to listen opens a new one, so a connection made in between is refused by the kernel (ECONNREFUSED: nothing accepted it, nothing of it is lost). ' +
  'A retry that comes back before a replacement is listening is refused again; retries spread over a worker\'s start time (the third row) are all answered. ' +
  'Refused during the drain: connections made after the listener closed, as intended; lost counts what was accepted and never answered.', '')

const report = lines.join('\n')
process.stdout.write(`${report}\n`)
await mkdir(args.out, { recursive: true })
await writeFile(join(args.out, 'chaos.md'), `# npm run chaos\n\nRun ${new Date().toISOString()}, Node ${process.version}.\n\n${report}`)
await writeFile(join(args.out, 'chaos.json'), JSON.stringify({ bad, spinIterationsPerMs, overloads, saturated, faults, kills, fastKills, fastKillsBackoff, drain, rolling }, (_k, v: unknown) => v instanceof Set ? [...v] : v, 2))

// What must hold whatever the machine's speed: the run fails when it does not (the overload
// figures are measured, not judged).
const broken = [
  ...(bad.asExpected === bad.sent && bad.servedAfter ? [] : ['bad input: not every one answered as the table expects, or the server stopped serving']),
  ...(faults.recovered ? [] : ['thread faults: a fault or a normal job beside them not answered as expected']),
  ...[drain, rolling].filter((r) => r.tally.lost > 0 || r.tally.errorStatus > 0).map((r) => `${r.what}: jobs lost or answered with an error`)
]
if (broken.length > 0) {
  process.stderr.write(`npm run chaos: ${broken.length} scenario(s) failed:\n${broken.map((b) => `- ${b}\n`).join('')}`)
  process.exitCode = 1
}
