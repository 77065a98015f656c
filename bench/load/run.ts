import { build, type Histogram } from 'hdr-histogram-js'
import { performance } from 'node:perf_hooks'
import { processTree, sampleRss } from '../lib/proc.js'
import type { JobSpec, LoadOptions } from './options.js'
import {
  openHttp, openWs, WS_HANDSHAKE_MS, WS_REOPEN_PAUSE_MS, WS_REOPEN_TRIES, type Connection, type Job, type Outcome
} from './transports.js'

export interface LatencySummary {
  count: number
  p50: number
  p90: number
  p99: number
  max: number
  mean: number
}

export interface LoadReport {
  options: Omit<LoadOptions, 'token'>
  startedAt: string
  seconds: number
  sent: number
  ok: number
  /** Answered with an error code, or lost with their connection (`errors` has them by code). */
  failed: number
  /** Not answered within `timeoutMs`: neither done nor failed, and not in `errors`. */
  timedOut: number
  /** Jobs a rate-driven run could not send because every connection was at its in-flight cap. */
  skipped: number
  /**
   * Jobs left unanswered when the run stopped waiting: with `cut`, those in flight at the end of
   * the duration; without it, any still waiting long past every timeout (none, unless a wait was unbounded).
   */
  abandoned: number
  /** Sends again of jobs whose connection failed under them (`retries`); the job counts once, by its last outcome. */
  retried: number
  jobsPerS: number
  /**
   * Milliseconds spent opening the connections before the clock started: the WebSockets, or the
   * HTTP connections with `openFirst`; next to nothing otherwise (HTTP opens with the first jobs).
   */
  openMs: number
  errors: Record<string, number>
  /** Milliseconds, from the job's intended send time to its answer, answered jobs only. */
  latencyMs: LatencySummary
  /** The same, for the jobs answered with an error (how fast a shed job is told so). */
  failedLatencyMs: LatencySummary
  /**
   * Where an answer's latency went, over HTTP: `server`, the server's own time for the answered
   * and the failed jobs (its `Server-Timing` total: the job's, from admission to its result, for an
   * answered one; the request's, from its first byte read, for a refusal);
   * `sendLate`, how far past its intended time the client sent each job (open loop only: its own
   * loop running late, on cores it shares with the server). The rest is the sockets and the time a
   * request waited to be read. Absent where nothing was measured.
   */
  parts?: { server?: { ok: LatencySummary, failed: LatencySummary }, sendLate?: LatencySummary }
  byTask: Record<string, LatencySummary & { errors: number }>
  rss?: { startBytes: number, peakBytes: number, pids: number }
}

export interface Progress {
  elapsedS: number
  sent: number
  ok: number
  failed: number
  inFlight: number
}

const newHistogram = (): Histogram => build(
  { lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 }
)
const round = (n: number): number => Math.round(n * 100) / 100

function summarize (h: Histogram): LatencySummary {
  // Recorded in microseconds, reported in milliseconds. HDR gives a percentile as the top of its
  // bucket, which can lie above the largest value recorded: no percentile is reported above the max.
  const max = round(h.maxValue / 1000)
  const at = (p: number): number => Math.min(max, round(h.getValueAtPercentile(p) / 1000))
  return { count: h.totalCount, p50: at(50), p90: at(90), p99: at(99), max, mean: round(h.mean / 1000) }
}

/** Records `ms` in a histogram of microseconds (its lowest value is 1). */
function record (h: Histogram, ms: number): void {
  h.recordValue(Math.max(1, Math.round(ms * 1000)))
}

function partsOf (serverOk: Histogram, serverFailed: Histogram, sendLate: Histogram): Pick<LoadReport, 'parts'> {
  const server = serverOk.totalCount + serverFailed.totalCount > 0
    ? { ok: summarize(serverOk), failed: summarize(serverFailed) }
    : undefined
  const late = sendLate.totalCount > 0 ? summarize(sendLate) : undefined
  if (server === undefined && late === undefined) return {}
  return { parts: { ...(server === undefined ? {} : { server }), ...(late === undefined ? {} : { sendLate: late }) } }
}

function picker (mix: JobSpec[]): () => Job {
  const total = mix.reduce((s, j) => s + j.weight, 0)
  return () => {
    let r = Math.random() * total
    for (const j of mix) {
      r -= j.weight
      if (r < 0) return { task: j.task, input: j.input }
    }
    const last = mix[mix.length - 1] as JobSpec
    return { task: last.task, input: last.input }
  }
}

/** Before a job is sent again: time for a killed worker's replacement to start taking connections. */
const RETRY_PAUSE_MS = 500

const TIMED_OUT = 'CLIENT_TIMEOUT'

/** The most a WebSocket's reopening may take: its tries and pauses (transports.ts). */
const WS_REOPEN_MS = WS_REOPEN_TRIES * (WS_HANDSHAKE_MS + WS_REOPEN_PAUSE_MS)

/** The job's connection failed under it: no answer came, and none will. */
function lostWithConnection (outcome: Outcome): boolean {
  return !outcome.ok && outcome.code !== undefined && outcome.code.startsWith('CLIENT_') && outcome.code !== TIMED_OUT
}

/**
 * Drives the server: closed loop (each connection keeps `inFlight` jobs going) or open loop at
 * `rate`; for `duration` seconds or `count` jobs; then waits for every answer (each bounded by
 * `timeoutMs`) and reports. Stops by itself.
 */
export async function runLoad (
  options: LoadOptions, onProgress?: (p: Progress) => void, onClockStart?: () => void
): Promise<LoadReport> {
  const opening = performance.now()
  const connections: Connection[] = options.transport === 'ws'
    ? await Promise.all(Array.from({ length: options.connections }, () => openWs(options)))
    : Array.from({ length: options.connections }, () => openHttp(options))
  // Only an HTTP connection has connect(): a WebSocket is open already. One that cannot be opened
  // is left to its jobs, which count how it failed.
  if (options.openFirst === true) await Promise.all(connections.map((c) => c.connect?.().catch(() => {})))
  const openMs = performance.now() - opening
  const pick = picker(options.mix)
  const all = newHistogram()
  const failedLatency = newHistogram()
  const serverOk = newHistogram()
  const serverFailed = newHistogram()
  const sendLate = newHistogram()
  const perTask = new Map<string, { h: Histogram, errors: number }>()
  const errors: Record<string, number> = {}
  let sent = 0
  let ok = 0
  let failed = 0
  let skipped = 0
  let retried = 0
  let timedOut = 0
  const inFlight = new Array<number>(connections.length).fill(0)
  const rss = options.pid === undefined ? undefined : sampleRss(await processTree(options.pid))

  const start = performance.now()
  onClockStart?.()
  const sendUntil = start + options.duration * 1000
  const mayStart = (): boolean => options.count !== undefined ? sent < options.count : performance.now() < sendUntil

  // With `cut`, what is in flight when the duration ends is abandoned there. Without it, every wait
  // is bounded (answers by the job timeout, each retry likewise, a WebSocket's upgrade by its own),
  // and a run still waiting well past those bounds abandons what is left instead of hanging.
  const tries = (options.retries ?? 0) + 1
  const lastAnswerBy = sendUntil + tries * (options.timeoutMs + RETRY_PAUSE_MS) + WS_REOPEN_MS + 5_000
  const cutAt = options.count !== undefined ? undefined : options.cut === true ? sendUntil : lastAnswerBy
  const rampMs = options.count === undefined ? (options.rampS ?? 0) * 1000 : 0
  const countFrom = start + rampMs
  let cutDone = false
  const open = new Set<{ task: string, intendedAt: number }>()
  const statsOf = (task: string): { h: Histogram, errors: number } => {
    let stats = perTask.get(task)
    if (stats === undefined) perTask.set(task, stats = { h: newHistogram(), errors: 0 })
    return stats
  }
  const recordLatency = (task: string, ms: number): void => {
    record(all, ms)
    record(statsOf(task).h, ms)
  }

  const one = async (c: number, intendedAt: number): Promise<void> => {
    const lateMs = performance.now() - intendedAt
    const job = pick()
    const entry = { task: job.task, intendedAt }
    sent++
    inFlight[c]!++
    open.add(entry)
    let outcome = await (connections[c] as Connection).send(job)
    for (let left = options.retries ?? 0; left > 0 && lostWithConnection(outcome); left--) {
      retried++
      await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS))
      outcome = await (connections[c] as Connection).send(job)
    }
    open.delete(entry)
    inFlight[c]!--
    if (cutDone) return // abandoned at the cut: counted there
    if (performance.now() < countFrom) return // still ramping up
    const stats = statsOf(job.task)
    if (options.rate !== undefined) record(sendLate, lateMs)
    if (outcome.serverMs !== undefined) record(outcome.ok ? serverOk : serverFailed, outcome.serverMs)
    if (outcome.code === TIMED_OUT) {
      timedOut++
    } else if (outcome.ok) {
      ok++
      recordLatency(job.task, performance.now() - intendedAt)
    } else {
      failed++
      record(failedLatency, performance.now() - intendedAt)
      stats.errors++
      const code = outcome.code ?? 'UNKNOWN'
      errors[code] = (errors[code] ?? 0) + 1
    }
  }

  const progress = setInterval(() => onProgress?.({
    elapsedS: Math.round(
      (performance.now() - start) / 100
    ) / 10,
    sent,
    ok,
    failed,
    inFlight: inFlight.reduce((a, b) => a + b, 0)
  }), 1000)

  const drive = async (): Promise<void> => {
    if (options.rate === undefined) {
      await Promise.all(connections.flatMap((_, c) => Array.from({ length: options.inFlight }, async () => {
        // With a ramp, each slot starts at a random moment in it: jobs of one length sent all at
        // once would otherwise complete in lumps, and a window would count a whole lump or none.
        if (rampMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(rampMs, 250)))
        while (mayStart()) await one(c, performance.now())
      })))
    } else {
      const rate = options.rate
      const running = new Set<Promise<void>>()
      let next = 0
      while (mayStart()) {
        const due = Math.floor((performance.now() - start) / 1000 * rate)
        while (sent + skipped < due && mayStart()) {
          const intendedAt = start + (sent + skipped) / rate * 1000
          const c = next++ % connections.length
          if ((inFlight[c] as number) >= options.inFlight) { skipped++; continue }
          const p = one(c, intendedAt)
          running.add(p)
          void p.finally(() => running.delete(p))
        }
        await new Promise((resolve) => setTimeout(resolve, 2))
      }
      await Promise.all(running)
    }
  }

  let abandoned = 0
  try {
    if (cutAt === undefined) {
      await drive()
    } else {
      const driving = drive()
      driving.catch(() => {}) // its jobs end as the connections close; nothing waits on it past the cut
      let timer: NodeJS.Timeout | undefined
      const hit = await Promise.race([
        driving.then(() => false),
        new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), cutAt - performance.now()) })
      ])
      clearTimeout(timer)
      cutDone = hit || options.cut === true
      const now = performance.now()
      for (const entry of open) recordLatency(entry.task, now - Math.max(entry.intendedAt, countFrom))
      abandoned = open.size
    }
  } finally {
    clearInterval(progress)
    await Promise.all(connections.map((c) => c.close(cutDone)))
  }
  const windowS = options.cut === true && cutAt !== undefined ? options.duration : (performance.now() - start) / 1000
  const seconds = windowS - rampMs / 1000
  const { token: _token, ...shown } = options
  return {
    options: shown,
    startedAt: new Date(Date.now() - seconds * 1000).toISOString(),
    seconds: round(seconds),
    sent,
    ok,
    failed,
    timedOut,
    skipped,
    abandoned,
    retried,
    jobsPerS: round(ok / seconds),
    openMs: round(openMs),
    errors,
    latencyMs: summarize(all),
    failedLatencyMs: summarize(failedLatency),
    ...partsOf(serverOk, serverFailed, sendLate),
    byTask: Object.fromEntries([...perTask].map(([task, s]) => [task, { ...summarize(s.h), errors: s.errors }])),
    ...(rss === undefined ? {} : { rss: await rss.stop() })
  }
}
