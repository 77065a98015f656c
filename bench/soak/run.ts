/**
 * The soak: a `hybrid` server (with a throwaway PostgreSQL and Redis where they are installed)
 * under mixed load at a share of its capacity for minutes or hours, one worker SIGKILLed every
 * `killEveryS` and the cluster rolled (SIGHUP) every `hupEveryS`, every process of the tree sampled
 * every `sampleEveryS`. It passes when no process grows faster than 1 MB a minute once past the
 * warm-up (judgeGrowth says how), and no accepted job is lost: a job whose worker was killed under
 * it is sent again once, as a client would, and must then be answered.
 */
import { readdir, readFile } from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import { backendsAvailable, startPostgres, startRedis, type BackendServer } from '../../test/support/backends.js'
import { startServer, type ServerProcess } from '../../test/support/server-process.js'
import { loadDefaults, type JobSpec, type LoadOptions } from '../load/options.js'
import { runLoad, type LoadReport } from '../load/run.js'
import { processTree, residentBytes } from '../lib/proc.js'

export interface SoakOptions {
  minutes: number
  sampleEveryS: number
  killEveryS: number
  hupEveryS: number
  /** Growth is judged on samples taken this long after the start. */
  warmS: number
  /** ...and, for a worker, this long after it began to carry load (a replacement may idle for minutes). */
  settleS: number
  /** The share of the measured capacity to offer. */
  loadShare: number
  capacityS: number
  /** Start a throwaway PostgreSQL and Redis for the user-service jobs, where they are installed. */
  backends: boolean
}

export const SOAK_DEFAULTS: Omit<SoakOptions, 'minutes'> = {
  sampleEveryS: 15,
  killEveryS: 300,
  hupEveryS: 600,
  warmS: 300,
  settleS: 60,
  loadShare: 0.7,
  capacityS: 10,
  backends: true
}

export type Role = 'primary' | 'worker' | 'delay service'

export interface ProcessSample {
  atS: number
  pid: number
  role: Role
  rssBytes: number
  /** CPU seconds the process (all its threads) has used since it started, from /proc. */
  cpuS: number
  fds: number
  /** Cluster workers only: read from their /metrics (the others serve none). */
  heapUsedBytes?: number
  activeHandles?: number
}

export interface Growth {
  /** A process, or every worker at once (`pid` 0, role `workers`). */
  pid: number
  role: Role | 'workers'
  samples: number
  fromS: number
  toS: number
  /** Least-squares slope of RSS over the judged samples. */
  mbPerMin: number
  /** Two standard errors of that slope: the noise its samples leave on it (about a 95% interval). */
  noise: number
  /** Over 1 MB/min beyond its noise; under it beyond its noise; or too noisy to tell. */
  verdict: 'grows' | 'holds' | 'cannot tell'
}

export interface SoakReport {
  at: string
  node: string
  options: SoakOptions
  userService: boolean
  capacityPerS: number
  ratePerS: number
  mix: JobSpec[]
  streams: Array<{ name: string, report: LoadReport }>
  events: Array<{ atS: number, what: 'SIGKILL a worker' | 'SIGHUP', pid: number }>
  /** What the server logged of its processes meanwhile: workers started, died, replaced, rolled. */
  serverLog: Array<{ atS: number, msg: string, pid: number }>
  samples: ProcessSample[]
  /** Per process with enough judged samples, then the workers as a class; the others are in `unjudged`. */
  growth: Growth[]
  unjudged: Array<{ pid: number, role: Role, samples: number, why: string }>
  /**
   * Jobs sent whose connection failed under them, with no answer even after their one retry; jobs
   * not answered within 30 s; jobs the load client gave up waiting for. Each is a job lost.
   */
  lost: number
  timedOut: number
  abandoned: number
  /**
   * Jobs that never reached a server: their connection was refused (no worker was listening).
   * Not lost (nothing accepted them), and counted apart from the server's own refusals (`OVERLOADED`).
   */
  refused: number
  retried: number
  /** How the server ended on the SIGTERM that closes the run: exit code, signal, how long it took. */
  stop: { code: number | null, signal: NodeJS.Signals | null, ms: number, why?: string }
  passed: boolean
  reasons: string[]
}

const MAX_MB_PER_MIN = 1
const tenths = (ms: number): number => Math.round(ms / 100) / 10
const LIFECYCLE = /^(worker|SIGHUP|rolling restart|draining|a replacement|drain deadline|a message to a worker|server stopped)/

function mix (userService: boolean): JobSpec[] {
  const jobs: JobSpec[] = [
    { task: 'fib', input: { n: 22 }, weight: 25 },
    { task: 'spin', input: { ms: 2 }, weight: 10 },
    { task: 'sleep', input: { ms: 20 }, weight: 20 },
    { task: 'http', input: { delayMs: 20 }, weight: 20 },
    { task: 'fanout', input: { calls: 5, delayMs: 10 }, weight: 5 },
    // 1% bad input: over the schema's limit, answered 400 BAD_INPUT.
    { task: 'fib', input: { n: 99 }, weight: 1 }
  ]
  if (userService) {
    jobs.push({ task: 'cache', input: {}, weight: 12 }, { task: 'db', input: { op: 'read' }, weight: 5 }, { task: 'db', input: { op: 'write' }, weight: 2 })
  } else {
    jobs.push({ task: 'sleep', input: { ms: 5 }, weight: 19 })
  }
  return jobs
}

/** The server tree's processes and what each is. */
async function tree (primary: number): Promise<Array<{ pid: number, role: Role }>> {
  const pids = await processTree(primary)
  const out: Array<{ pid: number, role: Role }> = []
  for (const pid of pids) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    if (pid === primary) out.push({ pid, role: 'primary' })
    else if (cmdline.includes('upstream/main.js')) out.push({ pid, role: 'delay service' })
    else if (cmdline.includes('server.js')) out.push({ pid, role: 'worker' })
  }
  return out
}

/** Per-pid values of a metric in Prometheus text (default metrics carry a pid label). */
function perPid (text: string, name: string): Map<number, number> {
  const out = new Map<number, number>()
  for (const [, pid, value] of text.matchAll(new RegExp(`^${name}\\{[^}]*pid="(\\d+)"[^}]*\\} ([0-9.e+-]+)$`, 'gm'))) {
    out.set(Number(pid), Number(value))
  }
  return out
}

async function sample (server: ServerProcess, atS: number): Promise<ProcessSample[]> {
  // A connection of its own each time: a kept-alive one would hold a worker that is draining.
  const metrics = await fetch(`${server.url}/metrics`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(10_000) })
    .then(async (r) => await r.text()).catch(() => '')
  const heap = perPid(metrics, 'nodejs_heap_size_used_bytes')
  const handles = perPid(metrics, 'nodejs_active_handles_total')
  const out: ProcessSample[] = []
  for (const { pid, role } of await tree(server.proc.pid as number)) {
    try {
      const rssBytes = residentBytes(await readFile(`/proc/${pid}/status`, 'utf8'))
      // utime and stime, fields 14 and 15 of /proc/PID/stat, in USER_HZ ticks (100 a second on Linux).
      const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? []
      const cpuS = (Number(stat[11]) + Number(stat[12])) / 100
      const fds = (await readdir(`/proc/${pid}/fd`)).length
      // A worker killed while it was being read has released its memory and closed its files
      // before it shows as a zombie: read again, and keep the sample only if it was alive throughout.
      if (rssBytes === undefined || residentBytes(await readFile(`/proc/${pid}/status`, 'utf8')) === undefined) continue
      out.push({
        atS,
        pid,
        role,
        rssBytes,
        cpuS,
        fds,
        ...(heap.has(pid) ? { heapUsedBytes: heap.get(pid) } : {}),
        ...(handles.has(pid) ? { activeHandles: handles.get(pid) } : {})
      })
    } catch {} // gone between the listing and the reading
  }
  return out
}

/** Least-squares slope of y per x, and two of its standard errors (about a 95% interval). */
function slope (points: Array<[number, number]>): { slope: number, noise: number } {
  const n = points.length
  const mx = points.reduce((a, [x]) => a + x, 0) / n
  const my = points.reduce((a, [, y]) => a + y, 0) / n
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0)
  const sxy = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0)
  if (sxx === 0) return { slope: 0, noise: Infinity }
  const b = sxy / sxx
  const residuals = points.reduce((a, [x, y]) => a + (y - my - b * (x - mx)) ** 2, 0)
  return { slope: b, noise: 2 * Math.sqrt(residuals / Math.max(1, n - 2) / sxx) }
}

/** A worker carries load over an interval when it used at least a tenth of a core in it. */
const LOADED_CORES = 0.1
/** Fewer samples than this, or a shorter span, and a slope says nothing. */
const MIN_SAMPLES = 6
const MIN_SPAN_S = 120

function judge (pid: number, role: Growth['role'], judged: ProcessSample[]): Growth {
  const round = (x: number): number => Math.round(x * 1000) / 1000
  const { slope: mbPerMin, noise } = slope(judged.map((s) => [s.atS / 60, s.rssBytes / 2 ** 20]))
  const verdict = mbPerMin - noise > MAX_MB_PER_MIN ? 'grows' : mbPerMin + noise <= MAX_MB_PER_MIN ? 'holds' : 'cannot tell'
  const times = judged.map((s) => s.atS)
  const [fromS, toS] = [Math.min(...times), Math.max(...times)]
  return { pid, role, samples: judged.length, fromS, toS, mbPerMin: round(mbPerMin), noise: round(noise), verdict }
}

/**
 * Memory growth, judged so that it does not depend on where the load happened to go. The primary
 * and the delay service: the slope of RSS over their samples past `warmS`. A worker: over the
 * samples past `warmS` in which it carried load, from `settleS` after it first did (node:cluster
 * gives a replacement only new connections, so it may idle at its start-up size for minutes and
 * then rise to its working size within one: that step is load arriving, not a leak). Workers live
 * minutes here (one is killed every 5, all are rolled every 10) and their RSS swings by tens of MiB
 * with each garbage collection, so each worker's slope comes with its noise: it grows when it is
 * over 1 MB/min beyond that noise. Every worker's judged samples together say whether a loaded worker
 * late in the run holds more than one early in it (`workers`, the class): that slope has the
 * whole run behind it.
 */
export function judgeGrowth (samples: ProcessSample[], warmS: number, settleS: number): Pick<SoakReport, 'growth' | 'unjudged'> {
  const byPid = new Map<number, ProcessSample[]>()
  for (const s of samples) byPid.set(s.pid, [...(byPid.get(s.pid) ?? []), s])
  const growth: Growth[] = []
  const unjudged: SoakReport['unjudged'] = []
  const workers: ProcessSample[] = []
  for (const [pid, all] of byPid) {
    const role = (all[0] as ProcessSample).role
    let judged = all.filter((s) => s.atS >= warmS)
    if (role === 'worker') {
      const loaded = all.filter((s, i) => {
        const before = all[i - 1]
        return before !== undefined && (s.cpuS - before.cpuS) / (s.atS - before.atS) >= LOADED_CORES
      })
      const from = (loaded[0]?.atS ?? Infinity) + settleS
      judged = loaded.filter((s) => s.atS >= warmS && s.atS >= from)
      if (loaded.length === 0) {
        unjudged.push({ pid, role, samples: all.length, why: 'never carried load' })
        continue
      }
    }
    const span = (judged[judged.length - 1]?.atS ?? 0) - (judged[0]?.atS ?? 0)
    if (judged.length < MIN_SAMPLES || span < MIN_SPAN_S) {
      unjudged.push({ pid, role, samples: all.length, why: `${judged.length} samples over ${Math.round(span)} s past its warm-up` })
      continue
    }
    if (role === 'worker') workers.push(...judged)
    growth.push(judge(pid, role, judged))
  }
  if (workers.length >= MIN_SAMPLES) growth.push(judge(0, 'workers', workers))
  return { growth, unjudged }
}

/**
 * Stops the server with SIGTERM and waits until every process of its tree is gone: a worker still
 * draining when its primary is stopped leaves at its drain deadline, and nothing of the soak may
 * outlive it. Says how the primary exited (SIGKILL: it had not finished its drain in 15 s).
 */
async function stopTree (server: ServerProcess): Promise<SoakReport['stop']> {
  const pids = (await tree(server.proc.pid as number)).map((p) => p.pid)
  const started = performance.now()
  const since = Date.now()
  const code = await server.stop()
  const stop: SoakReport['stop'] = { code, signal: server.proc.signalCode, ms: Math.round(performance.now() - started) }
  // Not a clean stop: what the server said while stopping (its warnings and errors) and its stderr.
  if (code !== 0) {
    const said = server.logs.filter((l) => typeof l.time === 'number' && l.time >= since && Number(l.level) >= 40)
    stop.why = [...said.map((l) => JSON.stringify(l)), server.stderr().slice(-1000)].join('\n')
  }
  const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }
  const deadline = performance.now() + 60_000
  while (pids.some(alive) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 250))
  for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL')
  return stop
}

export async function runSoak (options: SoakOptions, progress: (line: string) => void = () => {}): Promise<SoakReport> {
  const available = backendsAvailable()
  const userService = options.backends && available.postgres && available.redis
  if (options.backends && !userService) progress('PostgreSQL or Redis not installed: no user-service jobs')
  const backends: BackendServer[] = []
  let server: ServerProcess | undefined
  try {
    if (userService) backends.push(await startPostgres(), await startRedis())
    const env: Record<string, string> = userService
      ? { DATABASE_URL: (backends[0] as BackendServer).url, REDIS_URL: (backends[1] as BackendServer).url }
      : {}
    server = await startServer({ MODE: 'hybrid', ...env })
    const jobs = mix(userService)
    const url = server.url

    const durationS = options.minutes * 60
    const STREAMS = [['http', 'json'], ['http', 'msgpack'], ['ws', 'json'], ['ws', 'msgpack']] as const
    const stream = (transport: 'http' | 'ws', encoding: 'json' | 'msgpack', over: Partial<LoadOptions>): LoadOptions =>
      loadDefaults(url, {
        transport,
        encoding,
        connections: transport === 'http' ? 32 : 4,
        inFlight: transport === 'http' ? 1 : 50,
        mix: jobs,
        timeoutMs: 30_000,
        ...over
      })
    // Capacity as the soak will load it: the four streams at once, closed loop, the client's own
    // CPU on the same cores included; what is offered is a share of that, open loop.
    progress(`capacity: the four streams at once, closed loop, ${options.capacityS} s`)
    const closedLoop = async (s: number): Promise<number> => {
      const reports = await Promise.all(STREAMS.map(async ([t, e]) => await runLoad(stream(t, e, { duration: s }))))
      return reports.reduce((a, r) => a + r.jobsPerS, 0)
    }
    await closedLoop(Math.min(3, options.capacityS))
    const capacityPerS = Math.round(await closedLoop(options.capacityS))
    const ratePerS = Math.round(capacityPerS * options.loadShare)
    progress(`capacity ${capacityPerS} jobs/s; offering ${ratePerS} jobs/s for ${options.minutes} min`)

    const start = performance.now()
    const atS = (): number => Math.round((performance.now() - start) / 100) / 10
    // Each stream's latest count of jobs in flight, for the progress lines.
    const inFlight = new Map<string, number>()
    const inFlightText = (): string => [...inFlight].map(([name, n]) => `${name} ${n}`).join(', ')
    const running = STREAMS.map(async ([t, e]) => ({
      name: `${t} ${e}`,
      report: await runLoad(
        stream(t, e, { duration: durationS, rate: ratePerS / 4, inFlight: t === 'http' ? 1 : 200, retries: 1 }),
        (p) => inFlight.set(`${t} ${e}`, p.inFlight)
      )
    }))

    const samples: ProcessSample[] = []
    const events: SoakReport['events'] = []
    // The server must outlive the soak: if it exits, say so at once (its stderr has why).
    let exited: string | undefined
    let stopping = false
    server.proc.once('exit', (code, signal) => {
      if (stopping) return
      exited = `the server exited at ${atS()} s (code ${code}, signal ${signal}): ${server?.stderr().slice(-500) ?? ''}`
      progress(exited)
    })
    const timers: NodeJS.Timeout[] = []
    const every = (s: number, first: number, fn: () => Promise<void>): void => {
      const tick = (): void => {
        if (performance.now() - start > durationS * 1000) return
        void fn().catch((err: unknown) => progress(`(${String(err)})`))
        timers.push(setTimeout(tick, s * 1000))
      }
      timers.push(setTimeout(tick, first * 1000))
    }
    const srv = server
    every(options.sampleEveryS, 0, async () => {
      const now = atS()
      const got = await sample(srv, now)
      samples.push(...got)
      const rss = got.reduce((a, s) => a + s.rssBytes, 0) / 2 ** 20
      progress(`${Math.round(now / 60 * 10) / 10} min: ${got.length} processes, ${Math.round(rss)} MiB RSS in all; in flight: ${inFlightText()}`)
    })
    every(options.killEveryS, options.killEveryS, async () => {
      const worker = (await tree(srv.proc.pid as number)).find((p) => p.role === 'worker')
      if (worker === undefined) return
      process.kill(worker.pid, 'SIGKILL')
      events.push({ atS: atS(), what: 'SIGKILL a worker', pid: worker.pid })
      progress(`SIGKILL worker ${worker.pid}`)
    })
    every(options.hupEveryS, options.hupEveryS + options.killEveryS / 2, async () => {
      process.kill(srv.proc.pid as number, 'SIGHUP')
      events.push({ atS: atS(), what: 'SIGHUP', pid: srv.proc.pid as number })
      progress('SIGHUP: rolling restart')
    })
    // Past the duration the streams only wait for their last answers: say what they wait on.
    const waitingLines = setInterval(() => {
      if (performance.now() - start > durationS * 1000) progress(`waiting: ${inFlightText()}`)
    }, 10_000)
    const results = await Promise.all(running).finally(() => clearInterval(waitingLines))
    for (const t of timers) clearTimeout(t)
    const startedAt = Date.now() - (performance.now() - start)
    const serverLog = server.logs
      .filter((l) => typeof l.time === 'number' && l.time >= startedAt && typeof l.msg === 'string' && LIFECYCLE.test(l.msg))
      .map((l) => ({ atS: tenths(Number(l.time) - startedAt), msg: String(l.msg), pid: Number(l.pid) }))
    samples.push(...await sample(server, atS()))
    // The run ends as a user's would: SIGTERM, and every process gone with exit 0 soon after (a
    // drain left waiting on a connection would show here).
    stopping = true
    const stop = await stopTree(server)

    const { growth, unjudged } = judgeGrowth(samples, options.warmS, options.settleS)
    const count = (pick: (code: string) => boolean): number => results.reduce((a, { report }) =>
      a + Object.entries(report.errors).filter(([code]) => pick(code)).reduce((b, [, n]) => b + n, 0), 0)
    const REFUSED = 'CLIENT_ECONNREFUSED'
    const lost = count((c) => c.startsWith('CLIENT_') && c !== REFUSED)
    const refused = count((c) => c === REFUSED)
    const total = (pick: (r: LoadReport) => number): number => results.reduce((a, { report }) => a + pick(report), 0)
    const timedOut = total((r) => r.timedOut)
    const abandoned = total((r) => r.abandoned)
    const reasons: string[] = []
    if (exited !== undefined) reasons.push(exited)
    if (stop.code !== 0) reasons.push(`the server did not stop cleanly on SIGTERM: exit ${stop.code}, signal ${stop.signal} after ${stop.ms} ms`)
    for (const g of growth.filter((g) => g.verdict === 'grows')) {
      reasons.push(`${g.role}${g.pid === 0 ? '' : ` ${g.pid}`} grew ${g.mbPerMin} ± ${g.noise} MB/min (at most ${MAX_MB_PER_MIN})`)
    }
    // A worker's few minutes may not tell; the long-lived processes and the class must.
    for (const g of growth.filter((g) => g.verdict === 'cannot tell' && g.role !== 'worker')) {
      reasons.push(`cannot tell whether ${g.role}${g.pid === 0 ? '' : ` ${g.pid}`} grows: ${g.mbPerMin} ± ${g.noise} MB/min`)
    }
    for (const role of ['primary', 'workers'] as const) {
      if (!growth.some((g) => g.role === role)) reasons.push(`too short to judge the growth of the ${role}`)
    }
    if (lost > 0) reasons.push(`${lost} jobs lost with their connection, even after a retry`)
    if (timedOut > 0) reasons.push(`${timedOut} jobs not answered within 30 s`)
    if (abandoned > 0) reasons.push(`${abandoned} jobs still unanswered long after every timeout`)
    return {
      at: new Date().toISOString(),
      node: process.version,
      options,
      userService,
      capacityPerS,
      ratePerS,
      mix: jobs,
      streams: results,
      events,
      serverLog,
      samples,
      growth,
      unjudged,
      lost,
      timedOut,
      abandoned,
      refused,
      stop,
      retried: total((r) => r.retried),
      passed: reasons.length === 0,
      reasons
    }
  } finally {
    if (server !== undefined) await stopTree(server)
    for (const b of backends) await b.destroy()
  }
}
