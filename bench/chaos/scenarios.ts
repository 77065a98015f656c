/**
 * The fault scenarios of `npm run chaos`, each against a real server it starts and stops, each
 * returning figures. The fault tests call the same functions with smaller numbers.
 */
import { request as httpRequest } from 'node:http'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { coresBusy, type CoresBusy, cpuTogether, type CpuUsed, meterCpu } from '../lib/proc.js'
import { runLoad, type LoadReport } from '../load/run.js'
import { loadDefaults, TRIVIAL_MIX, type LoadOptions } from '../load/options.js'
import { JIT_WARMUP } from '../overhead/measure.js'
import { NO_SHEDDING, startServer } from '../../test/support/server-process.js'
import { badInputPairs, matches, openJobSocket, sendBadInput, type Transport } from '../../test/support/bad-inputs.js'

export interface Answer {
  /** HTTP status, or 0 when none came. */
  status: number
  /** What went wrong when no answer came: ECONNREFUSED, ECONNRESET, TIMEOUT... */
  failure?: string
  pid?: number
}

/** One POST /jobs on a connection of its own, so that the cluster may give it to any worker. */
export function postOnNewConnection (url: string, body: string, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve) => {
    const req = httpRequest(`${url}/jobs`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
    }, (res) => {
      let text = ''
      res.on('data', (d: Buffer) => { text += d.toString() })
      res.on('end', () => {
        let pid: number | undefined
        try { pid = (JSON.parse(text) as { ranOn?: { pid?: number } }).ranOn?.pid } catch {}
        resolve({ status: res.statusCode ?? 0, pid })
      })
      res.on('error', () => resolve({ status: 0, failure: 'ECONNRESET' }))
    })
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })))
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ status: 0, failure: err.code ?? err.message }))
    req.end(body)
  })
}

export interface ClientTally {
  requests: number
  okFirstTry: number
  okOnRetry: number
  /** Not answered 200 even after the retries (or, without retries, at all). */
  failed: number
  /** Of those, how the last attempt ended: refused (no process was accepting), or accepted and never answered. */
  failedRefused: number
  failedLost: number
  /** First attempts refused (ECONNREFUSED): no process was accepting. */
  refused: number
  /** First attempts accepted but never answered (reset or timed out). */
  lost: number
  /** First attempts answered with an error status. */
  errorStatus: number
  pids: Set<number>
}

/** The pause before the one retry. */
export const RETRY_PAUSE_MS = 500
/** Retries spread over a worker's start: what a client does when workers may die faster than they are replaced. */
export const BACKOFF_PAUSES_MS = [500, 1000, 2000] as const

export interface ClientOptions {
  concurrency: number
  /** Sending stops when this resolves. */
  until: Promise<unknown>
  body: string
  timeoutMs: number
  /** The pause before each retry of a failed job: [] sends it once, [500] retries it once after 500 ms. */
  retryPausesMs: readonly number[]
}

export const newTally = (): ClientTally => ({
  requests: 0,
  okFirstTry: 0,
  okOnRetry: 0,
  failed: 0,
  failedRefused: 0,
  failedLost: 0,
  refused: 0,
  lost: 0,
  errorStatus: 0,
  pids: new Set()
})

/**
 * Closed-loop clients, each sending one job at a time, retrying a failed one after each pause given.
 * The tally fills as they go (a caller may read it meanwhile: the worker pids seen so far).
 */
export async function clients (
  url: string, options: ClientOptions, tally: ClientTally = newTally()
): Promise<ClientTally> {
  let stop = false
  const halt = (): void => { stop = true }
  options.until.then(halt, halt)
  const one = async (): Promise<void> => {
    // eslint-disable-next-line no-unmodified-loop-condition -- `halt` sets it when `until` settles
    while (!stop) {
      tally.requests++
      const first = await postOnNewConnection(url, options.body, options.timeoutMs)
      if (first.pid !== undefined) tally.pids.add(first.pid)
      if (first.status === 200) {
        tally.okFirstTry++
        continue
      }
      if (first.failure === 'ECONNREFUSED') tally.refused++
      else if (first.status === 0) tally.lost++
      else tally.errorStatus++
      let last = first
      for (const pause of options.retryPausesMs) {
        // As a client would: a pause first (a worker killed a moment ago is being replaced).
        await sleep(pause)
        last = await postOnNewConnection(url, options.body, options.timeoutMs)
        if (last.status === 200) break
      }
      if (last !== first && last.status === 200) {
        tally.okOnRetry++
        continue
      }
      tally.failed++
      if (last.failure === 'ECONNREFUSED') tally.failedRefused++
      else if (last.status === 0) tally.failedLost++
    }
  }
  await Promise.all(Array.from({ length: options.concurrency }, one))
  return tally
}

export interface BadInputFigures {
  sent: number
  asExpected: number
  byStatus: Record<string, number>
  unexpected: string[]
  /** A normal job on each transport afterwards. */
  servedAfter: boolean
}

/** Every case of the bad-input table over every transport it applies to. */
export async function badInputs (url: string): Promise<BadInputFigures> {
  const figures: BadInputFigures = { sent: 0, asExpected: 0, byStatus: {}, unexpected: [], servedAfter: false }
  const sockets = new Map<Transport, Awaited<ReturnType<typeof openJobSocket>>>()
  const socketFor = async (t: Transport): Promise<Awaited<ReturnType<typeof openJobSocket>> | undefined> => {
    if (!t.startsWith('ws')) return undefined
    let ws = sockets.get(t)
    if (ws === undefined || ws.readyState !== ws.OPEN) sockets.set(t, ws = await openJobSocket(url))
    return ws
  }
  try {
    for (const [c, t] of badInputPairs()) {
      figures.sent++
      const outcome = await sendBadInput(url, c, t, await socketFor(t))
      const key = t.startsWith('ws') ? `ws ${outcome.code}` : String(outcome.status)
      figures.byStatus[key] = (figures.byStatus[key] ?? 0) + 1
      if (matches(c, t, outcome)) figures.asExpected++
      else figures.unexpected.push(`${c.name} over ${t}: ${JSON.stringify(outcome)}`)
    }
    const ok = { name: 'ok', value: { task: 'fib', input: { n: 10 } }, status: 200, code: 'OK' }
    const after = await Promise.all((['http-json', 'http-msgpack', 'ws-json', 'ws-msgpack'] as const).map(async (t) => sendBadInput(url, ok, t, await socketFor(t))))
    figures.servedAfter = after.every((o) => o.code === 'OK')
  } finally {
    for (const ws of sockets.values()) ws.terminate()
  }
  return figures
}

export interface OverloadFigures {
  model: string
  job: string
  /** Offered rate as a multiple of the sustainable one. */
  factor: number
  /** The mean of the closed loops just before and just after the run (sustainableEachPerS). */
  sustainablePerS: number
  sustainableEachPerS: [number, number]
  /** The closed loop's rate before the run times the factor. */
  offeredPerS: number
  /** What the client managed to send per second (an open loop on the same cores may fall short). */
  sentPerS: number
  admittedPerS: number
  /** Admitted jobs/s over the sustainable rate. */
  goodput: number
  shedShare: number
  otherErrors: number
  admittedP50Ms: number
  admittedP99Ms: number
  /** How long a shed job took to be told so. */
  shedP99Ms: number
  /**
   * Of those times, the server's own (its Server-Timing: an admitted job's time in the server, a
   * refusal's from the request's first byte), and how late the client itself sent (its loop on the
   * same cores); undefined where not measured.
   */
  admittedServerP99Ms: number | undefined
  shedServerP99Ms: number | undefined
  sentLateP99Ms: number | undefined
  /** Jobs the open loop could not send: all its connections were waiting. */
  skipped: number
  /**
   * Where the cores went, in the two closed loops that measured the sustainable rate around this
   * run and in this run after its onset: the server's event loops, the rest of its tree (pool threads, V8's helpers,
   * the delay service), and the load client (this process, on the same cores).
   */
  cores: { sustainable: CoresBusy, run: CoresBusy }
  /** The server tree's CPU per answered job, ms: in those closed loops and in this run. */
  serverCpuMsPerJob: { sustainable: number, run: number }
}

export interface OverloadJob {
  label: string
  task: string
  input: Record<string, unknown>
  /** Closed-loop clients for the sustainable rate: enough to keep the server busy. */
  connections: number
}

const loadOptions = (url: string, over: Partial<LoadOptions>): LoadOptions => loadDefaults(url, {
  connections: 8,
  duration: 3,
  mix: [{ task: 'spin', input: { ms: 5 }, weight: 1 }],
  timeoutMs: 30_000,
  ...over
})

/** Seconds at the start of an open-loop run that are not counted: the onset, when a queue first builds. */
export const OVERLOAD_RAMP_S = 1

/**
 * Seconds of trivial jobs (JIT_WARMUP's) every fresh server of the overload and the saturation
 * answers before its own load: one still compiling its request path serves a fraction of what it
 * will (JIT_WARMUP in bench/overhead/measure.ts has the figures).
 */
export const JIT_WARMUP_S = 3

async function warmJit (url: string): Promise<void> {
  await runLoad(loadOptions(url, { duration: JIT_WARMUP_S, connections: JIT_WARMUP.connections, mix: TRIVIAL_MIX }))
}

/** A closed loop's answered rate on a server that never sheds, and the CPU it took. */
interface Sustained {
  perS: number
  ok: number
  used: CpuUsed
}

/**
 * The sustainable rate: on a fresh server of the configuration with shedding and the queue bound
 * off, a closed loop of 3 s after JIT_WARMUP_S of trivial jobs and 1 s of its own load.
 */
async function sustained (env: Record<string, string>, job: OverloadJob): Promise<Sustained> {
  const mix = [{ task: job.task, input: job.input, weight: 1 }]
  const reference = await startServer({ ...env, ...NO_SHEDDING, MAX_QUEUE: '1000000' })
  try {
    await warmJit(reference.url)
    await runLoad(loadOptions(reference.url, { duration: 1, connections: job.connections, mix })) // warm-up
    const { result, used } = await meterCpu(reference.proc.pid as number, async () => (
      await runLoad(loadOptions(reference.url, { duration: 3, connections: job.connections, mix }))
    ))
    return { perS: result.jobsPerS, ok: result.ok, used }
  } finally {
    await reference.stop()
  }
}

/**
 * An open loop at `rate` on a fresh server of the configuration, warmed as the sustainable rate's
 * server is; the CPU counted after its onset.
 */
async function openLoop (
  env: Record<string, string>, job: OverloadJob, rate: number, seconds: number
): Promise<{ result: LoadReport, used: CpuUsed }> {
  const mix = [{ task: job.task, input: job.input, weight: 1 }]
  const server = await startServer(env)
  try {
    await warmJit(server.url)
    await runLoad(loadOptions(server.url, { duration: 1, connections: job.connections, mix })) // warm-up
    await sleep(500)
    const open = { rate, rampS: OVERLOAD_RAMP_S, connections: 400, inFlight: 1, timeoutMs: 10_000, mix }
    return await meterCpu(
      server.proc.pid as number,
      async () => await runLoad(loadOptions(server.url, { ...open, duration: seconds + OVERLOAD_RAMP_S })),
      OVERLOAD_RAMP_S * 1000
    )
  } finally {
    await server.stop()
  }
}

/**
 * For each factor, an open loop at that factor of the sustainable rate on a fresh server of the
 * configuration itself: how much is admitted and shed, how fast a shed job is told so, and what
 * p50 and p99 the admitted jobs keep, after the first OVERLOAD_RAMP_S seconds. The sustainable
 * rate is measured before each open loop and after it (the after of one the before of the next):
 * the open loop's rate comes from the one before, its goodput is against the mean of the two, so
 * that a machine that speeds up or slows down between them (a shared one moves by half in tens of
 * seconds) does not pass for shedding that wastes capacity or for capacity it does not have.
 */
export async function overload (
  model: string, env: Record<string, string>, job: OverloadJob, factors: readonly number[], seconds: number
): Promise<OverloadFigures[]> {
  const out: OverloadFigures[] = []
  let before = await sustained(env, job)
  for (const factor of factors) {
    const rate = Math.round(before.perS * factor)
    const { result: over, used } = await openLoop(env, job, rate, seconds)
    const after = await sustained(env, job)
    const sustainablePerS = (before.perS + after.perS) / 2
    const closedCpu = cpuTogether(before.used, after.used)
    const shed = over.errors.OVERLOADED ?? 0
    const admittedPerS = over.ok / over.seconds
    out.push({
      model,
      job: job.label,
      factor,
      sustainablePerS: Math.round(sustainablePerS),
      sustainableEachPerS: [Math.round(before.perS), Math.round(after.perS)],
      offeredPerS: rate,
      sentPerS: Math.round(over.sent / (over.seconds + OVERLOAD_RAMP_S)),
      admittedPerS: Math.round(admittedPerS),
      goodput: admittedPerS / sustainablePerS,
      shedShare: over.ok + over.failed === 0 ? 0 : shed / (over.ok + over.failed),
      otherErrors: over.failed - shed,
      skipped: over.skipped,
      admittedP50Ms: over.latencyMs.p50,
      admittedP99Ms: over.latencyMs.p99,
      shedP99Ms: over.failedLatencyMs.p99,
      admittedServerP99Ms: over.parts?.server?.ok.p99,
      shedServerP99Ms: shed === 0 ? undefined : over.parts?.server?.failed.p99,
      sentLateP99Ms: over.parts?.sendLate?.p99,
      cores: { sustainable: coresBusy(closedCpu), run: coresBusy(used) },
      serverCpuMsPerJob: {
        sustainable: closedCpu.all * 1000 / Math.max(1, before.ok + after.ok),
        run: used.all * 1000 / Math.max(1, over.ok)
      }
    })
    before = after
  }
  return out
}

export interface SaturationFigures {
  model: string
  connections: number
  jobsPerS: number
  shed: number
  p99Ms: number
}

/** Closed-loop saturation with trivial jobs: a loop (or pool) that is busy but on time sheds nothing. */
export async function saturation (
  model: string, env: Record<string, string>, seconds: number
): Promise<SaturationFigures> {
  const server = await startServer(env)
  const mix = TRIVIAL_MIX
  try {
    await warmJit(server.url)
    await runLoad(loadOptions(server.url, { duration: 1, connections: 50, mix }))
    const report = await runLoad(loadOptions(server.url, { duration: seconds, connections: 50, mix }))
    return {
      model,
      connections: 50,
      jobsPerS: report.jobsPerS,
      shed: report.errors.OVERLOADED ?? 0,
      p99Ms: report.latencyMs.p99
    }
  } finally {
    await server.stop()
  }
}

export interface ThreadFaultFigures {
  faults: Record<string, { sent: number, answered: Record<string, number> }>
  normalJobs: number
  normalOk: number
  /** Every fault answered with its code, the normal jobs all answered, and the same process serving after. */
  recovered: boolean
  poolThreadsAfter: number
}

async function postJson (url: string, path: string, body: unknown): Promise<{ status: number, json: any }> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000) })
  return { status: res.status, json: await res.json() }
}

/** `rounds` of each fault on pool threads, with normal jobs sent beside them. */
export async function threadFaults (rounds: number): Promise<ThreadFaultFigures> {
  const server = await startServer({ MODE: 'hybrid', PROCESSES: '1', THREADS: '2', FAULT_TASKS: 'on', THREAD_HEAP_MB: '64', JOB_TIMEOUT_MS: '1000' })
  try {
    const modes = ['throw', 'exit', 'oom', 'loop'] as const
    const expected: Record<string, string> = { throw: 'TASK_FAILED', exit: 'TASK_FAILED', oom: 'TASK_FAILED', loop: 'TIMEOUT' }
    const faults: ThreadFaultFigures['faults'] = {}
    let normalJobs = 0
    let normalOk = 0
    const pidBefore = (await postJson(server.url, '/jobs', { task: 'fib', input: { n: 5 } })).json.ranOn.pid as number
    for (let round = 0; round < rounds; round++) {
      for (const mode of modes) {
        const normal = Array.from({ length: 4 }, () => postJson(server.url, '/jobs', { task: 'fib', input: { n: 22 } }))
        const fault = await postJson(server.url, '/jobs', { task: 'fault', input: { mode } })
        const entry = faults[mode] ??= { sent: 0, answered: {} }
        entry.sent++
        const code = fault.status === 200 ? 'OK' : String(fault.json.code)
        entry.answered[code] = (entry.answered[code] ?? 0) + 1
        for (const r of await Promise.all(normal)) {
          normalJobs++
          if (r.status === 200) normalOk++
        }
      }
    }
    const after = await Promise.all(Array.from({ length: 10 }, () => postJson(server.url, '/jobs', { task: 'fib', input: { n: 10 } })))
    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    const poolThreadsAfter = Number(/^pool_threads(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1] ?? Number.NaN)
    const recovered = modes.every((m) => faults[m]?.answered[expected[m]!] === rounds) && normalOk === normalJobs &&
      after.every((r) => r.status === 200 && r.json.ranOn.pid === pidBefore)
    return { faults, normalJobs, normalOk, recovered, poolThreadsAfter }
  } finally {
    await server.stop()
  }
}

export interface KillFigures {
  kills: number
  everyMs: number
  replaced: number
  seconds: number
  tally: ClientTally
  /** Share of jobs answered 200 at the first try, and with one retry. */
  firstTryRate: number
  withRetryRate: number
  retryPausesMs: readonly number[]
  /**
   * From the primary's log: how long no worker was alive in all, in how many stretches, and how long
   * each replacement took to start (from the death it replaces to its listening).
   */
  noWorkerMs: number
  noWorkerStretches: number
  replacementMs: { median: number, max: number }
  servedAfter: boolean
}

/**
 * Reads the primary's log of a kill loop: with `processes` workers at the start, each "worker
 * started" adds one and each death removes one; a stretch with none is a time when node:cluster
 * had closed the listening socket.
 */
export function workerGaps (
  logs: Array<Record<string, unknown>>, processes: number
): Pick<KillFigures, 'noWorkerMs' | 'noWorkerStretches' | 'replacementMs'> {
  const events = logs
    .filter((l) => l.msg === 'worker started' || l.msg === 'worker died while serving; replacing it')
    .map((l) => ({ at: Number(l.time), up: l.msg === 'worker started' }))
    .sort((a, b) => a.at - b.at)
  let alive = 0
  let started = 0
  let emptySince: number | undefined
  let noWorkerMs = 0
  let noWorkerStretches = 0
  const deaths: number[] = []
  const replacementMs: number[] = []
  for (const e of events) {
    if (e.up) {
      alive++
      // The first `processes` starts are the cluster's own; each later one replaces the oldest death waiting.
      if (++started > processes && deaths.length > 0) replacementMs.push(e.at - (deaths.shift() as number))
      if (emptySince !== undefined) {
        noWorkerMs += e.at - emptySince
        emptySince = undefined
      }
    } else {
      alive--
      deaths.push(e.at)
      if (alive === 0) {
        emptySince = e.at
        noWorkerStretches++
      }
    }
  }
  const sorted = replacementMs.sort((a, b) => a - b)
  return {
    noWorkerMs,
    noWorkerStretches,
    replacementMs: { median: sorted[Math.floor(sorted.length / 2)] ?? 0, max: sorted[sorted.length - 1] ?? 0 }
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** A worker killed with SIGKILL every `everyMs` while retrying clients send jobs. */
export async function killLoop (
  kills: number, everyMs: number, concurrency = 8, retryPausesMs: readonly number[] = [RETRY_PAUSE_MS]
): Promise<KillFigures> {
  const server = await startServer({ MODE: 'processes', PROCESSES: '2' })
  try {
    const started = performance.now()
    const tally = newTally()
    const deadline = performance.now() + kills * everyMs * 4 + 10_000
    const killing = (async () => {
      for (let done = 0; done < kills;) {
        if (performance.now() > deadline || server.proc.exitCode !== null) throw new Error(`kill loop stalled after ${done} kills (server exit code ${server.proc.exitCode}): ${server.stderr()}`)
        await sleep(everyMs)
        // A worker that answered recently: the pids in the answers are the cluster workers'.
        const victim = [...tally.pids].find(alive)
        if (victim === undefined) continue
        process.kill(victim, 'SIGKILL')
        tally.pids.clear()
        done++
      }
      await sleep(everyMs)
    })()
    // 2 s per attempt: a connection the primary hands to a worker as it is killed is never answered.
    await clients(server.url, { concurrency, until: killing, body: JSON.stringify({ task: 'fib', input: { n: 15 } }), timeoutMs: 2_000, retryPausesMs }, tally)
    await killing
    const after = await postOnNewConnection(server.url, JSON.stringify({ task: 'fib', input: { n: 5 } }), 5_000)
    return {
      kills,
      everyMs,
      replaced: server.logs.filter((l) => l.msg === 'worker died while serving; replacing it').length,
      seconds: Math.round((performance.now() - started) / 100) / 10,
      tally,
      firstTryRate: tally.okFirstTry / tally.requests,
      withRetryRate: (tally.okFirstTry + tally.okOnRetry) / tally.requests,
      retryPausesMs,
      ...workerGaps(server.logs, 2),
      servedAfter: after.status === 200
    }
  } finally {
    await server.stop()
  }
}

export interface RestartFigures {
  what: 'SIGTERM drain' | 'SIGHUP rolling restart'
  /** Requests sent before the signal and still in flight when it came. */
  inFlightAtSignal: number
  tally: ClientTally
  exitCode: number | null
  /** From the signal to the exit (drain) or to "rolling restart done". */
  ms: number
  servedAfter?: boolean
}

/**
 * SIGTERM under load: clients without retries keep sending jobs of `jobMs` until the server has
 * exited. Every job accepted must be answered; connections made after the listener closed are
 * refused, which is what a stopped server does.
 */
export async function drainUnderLoad (jobMs: number, concurrency = 16): Promise<RestartFigures> {
  const server = await startServer({ MODE: 'hybrid', PROCESSES: '2' })
  const tally = newTally()
  let exited!: Promise<number | null>
  const signalled = sleep(1_000).then(() => {
    signalAt = performance.now()
    inFlightAtSignal = concurrency
    exited = server.stop('SIGTERM')
    return exited
  })
  let signalAt = 0
  let inFlightAtSignal = 0
  const body = JSON.stringify({ task: 'sleep', input: { ms: jobMs } })
  // The clients stop once the server has exited, so that some of them meet the closed port.
  const tallied = clients(
    server.url, { concurrency, until: signalled, body, timeoutMs: 10_000, retryPausesMs: [] }, tally
  )
  const exitCode = await signalled
  const ms = performance.now() - signalAt
  await tallied
  return { what: 'SIGTERM drain', inFlightAtSignal, tally, exitCode, ms: Math.round(ms) }
}

/** SIGHUP under load: every request must be answered, none refused, every worker replaced. */
export async function rollingRestartUnderLoad (concurrency = 8): Promise<RestartFigures> {
  const server = await startServer({ MODE: 'processes', PROCESSES: '2' })
  try {
    const tally = newTally()
    const body = JSON.stringify({ task: 'sleep', input: { ms: 20 } })
    let signalAt = 0
    let doneAt = 0
    const restarted = (async () => {
      await sleep(1_000)
      signalAt = performance.now()
      server.proc.kill('SIGHUP')
      const deadline = performance.now() + 30_000
      while (!server.logs.some((l) => l.msg === 'rolling restart done')) {
        if (performance.now() > deadline) throw new Error(`rolling restart not done in 30 s: ${server.stderr()}`)
        await sleep(20)
      }
      doneAt = performance.now()
      await sleep(1_000)
    })()
    await clients(server.url, { concurrency, until: restarted, body, timeoutMs: 10_000, retryPausesMs: [] }, tally)
    const after = await postOnNewConnection(server.url, body, 5_000)
    return { what: 'SIGHUP rolling restart', inFlightAtSignal: concurrency, tally, exitCode: null, ms: Math.round(doneAt - signalAt), servedAfter: after.status === 200 }
  } finally {
    await server.stop()
  }
}
