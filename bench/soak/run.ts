/**
 * The soak: a `hybrid` server (with a throwaway PostgreSQL and Redis where they are installed)
 * under mixed load at a share of its capacity for minutes or hours, one worker SIGKILLed every
 * `killEveryS` and the cluster rolled (SIGHUP) every `hupEveryS`, every process of the tree sampled
 * every `sampleEveryS`. It passes when no process grows faster than 1 MB a minute once past the
 * warm-up, and no accepted job is lost: a job whose worker was killed under it is sent again once,
 * as a client would, and must then be answered.
 */
import { readdir, readFile } from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import { backendsAvailable, startPostgres, startRedis, type BackendServer } from '../../test/support/backends.js'
import { startServer, type ServerProcess } from '../../test/support/server-process.js'
import { loadDefaults, type JobSpec, type LoadOptions } from '../load/options.js'
import { runLoad, type LoadReport } from '../load/run.js'
import { processTree } from '../lib/proc.js'

export interface SoakOptions {
  minutes: number
  sampleEveryS: number
  killEveryS: number
  hupEveryS: number
  /** Growth is judged on samples taken this long after the start and after the process's own first sample. */
  warmS: number
  /** The share of the measured capacity to offer. */
  loadShare: number
  capacityS: number
  /** Start a throwaway PostgreSQL and Redis for the user-service jobs, where they are installed. */
  backends: boolean
}

export const SOAK_DEFAULTS: Omit<SoakOptions, 'minutes'> = {
  sampleEveryS: 60, killEveryS: 300, hupEveryS: 600, warmS: 300, loadShare: 0.7, capacityS: 10, backends: true
}

export type Role = 'primary' | 'worker' | 'delay service'

export interface ProcessSample {
  atS: number
  pid: number
  role: Role
  rssBytes: number
  fds: number
  /** Cluster workers only: read from their /metrics (the others serve none). */
  heapUsedBytes?: number
  activeHandles?: number
}

export interface Growth {
  pid: number
  role: Role
  samples: number
  fromS: number
  toS: number
  /** Least-squares slope of RSS over the judged samples. */
  mbPerMin: number
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
  /** Per process with enough judged samples; the others are listed in `unjudged`. */
  growth: Growth[]
  unjudged: Array<{ pid: number, role: Role, samples: number }>
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
      const status = await readFile(`/proc/${pid}/status`, 'utf8')
      const rssBytes = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
      const fds = (await readdir(`/proc/${pid}/fd`)).length
      out.push({
        atS,
        pid,
        role,
        rssBytes,
        fds,
        ...(heap.has(pid) ? { heapUsedBytes: heap.get(pid) } : {}),
        ...(handles.has(pid) ? { activeHandles: handles.get(pid) } : {})
      })
    } catch {} // gone between the listing and the reading
  }
  return out
}

/** Least-squares slope, y per x. */
function slope (points: Array<[number, number]>): number {
  const n = points.length
  const mx = points.reduce((a, [x]) => a + x, 0) / n
  const my = points.reduce((a, [, y]) => a + y, 0) / n
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0)
  const sxy = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0)
  return sxx === 0 ? 0 : sxy / sxx
}

export function judgeGrowth (samples: ProcessSample[], warmS: number): Pick<SoakReport, 'growth' | 'unjudged'> {
  const byPid = new Map<number, ProcessSample[]>()
  for (const s of samples) byPid.set(s.pid, [...(byPid.get(s.pid) ?? []), s])
  const growth: Growth[] = []
  const unjudged: SoakReport['unjudged'] = []
  for (const [pid, all] of byPid) {
    const born = all[0]?.atS ?? 0
    const judged = all.filter((s) => s.atS >= warmS && s.atS >= born + warmS)
    const role = (all[0] as ProcessSample).role
    if (judged.length < 3) {
      unjudged.push({ pid, role, samples: all.length })
      continue
    }
    const mbPerMin = slope(judged.map((s) => [s.atS / 60, s.rssBytes / 2 ** 20]))
    const fromS = (judged[0] as ProcessSample).atS
    const toS = (judged[judged.length - 1] as ProcessSample).atS
    growth.push({ pid, role, samples: judged.length, fromS, toS, mbPerMin: Math.round(mbPerMin * 1000) / 1000 })
  }
  return { growth, unjudged }
}

/**
 * Stops the server and waits until every process of its tree is gone: a worker still draining
 * when its primary is stopped leaves at its drain deadline, and nothing of the soak may outlive it.
 */
async function stopTree (server: ServerProcess): Promise<void> {
  const pids = (await tree(server.proc.pid as number)).map((p) => p.pid)
  await server.stop()
  const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }
  const deadline = performance.now() + 60_000
  while (pids.some(alive) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 250))
  for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL')
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
    server.proc.once('exit', (code, signal) => {
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

    const { growth, unjudged } = judgeGrowth(samples, options.warmS)
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
    for (const g of growth) {
      if (g.mbPerMin > MAX_MB_PER_MIN) reasons.push(`${g.role} ${g.pid} grew ${g.mbPerMin} MB/min (at most ${MAX_MB_PER_MIN})`)
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
      retried: total((r) => r.retried),
      passed: reasons.length === 0,
      reasons
    }
  } finally {
    if (server !== undefined) await stopTree(server)
    for (const b of backends) await b.destroy()
  }
}
