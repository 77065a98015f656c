import { availableParallelism } from 'node:os'

export const MODES = ['event-loop', 'threads', 'processes', 'hybrid', 'auto'] as const
export const CPU_PLACEMENTS = ['inline', 'pool', 'auto'] as const
export const IO_PLACEMENTS = ['event-loop', 'pool'] as const
export const DISPATCHES = ['local', 'bullmq'] as const
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

export type Mode = (typeof MODES)[number]
export type CpuPlacement = (typeof CPU_PLACEMENTS)[number]
export type IoPlacement = (typeof IO_PLACEMENTS)[number]
export type LogLevel = (typeof LOG_LEVELS)[number]
export type Dispatch = (typeof DISPATCHES)[number]

export interface Config {
  readonly mode: Mode
  /** Cluster workers; 1 means the server runs in the started process, no fork. */
  readonly processes: number
  /** Piscina threads per process, at most. */
  readonly threads: number
  /** Threads started with the pool; the rest start on demand. */
  readonly minThreads: number
  readonly cpuJobs: CpuPlacement
  readonly ioJobs: IoPlacement
  /**
   * Where CPU jobs that go to a pool run: `local`, this process's Piscina pool; `bullmq`, a BullMQ
   * queue on REDIS_URL that `npm run worker` hosts take them from (src/placement/queue.ts).
   */
  readonly dispatch: Dispatch
  readonly port: number
  readonly host: string
  readonly jobTimeoutMs: number
  /** Jobs waiting for a pool thread, per process, before the server answers 503. */
  readonly maxQueue: number
  /** The delay service; undefined until the server has started its own. */
  readonly upstreamUrl: string | undefined
  readonly logLevel: LogLevel
  /** When set, every route but /health needs `Authorization: Bearer <token>` (WebSocket: or ?token=). */
  readonly authToken: string | undefined
  /** Jobs in flight per WebSocket connection; one more is answered OVERLOADED at once. */
  readonly wsMaxInFlight: number
  /** A WebSocket frame larger than this closes the connection with 1009. */
  readonly wsMaxFrameBytes: number
  /** Answers queued on a WebSocket but not yet written to the socket, past which it stops reading jobs. */
  readonly wsMaxBufferedBytes: number
  /** A WebSocket peer that has not answered the previous ping when this comes round again is closed. */
  readonly wsPingIntervalMs: number
  /** Heap of each pool thread (V8 old generation), in MiB: a job that needs more fails, its thread is replaced. */
  readonly threadHeapMb: number
  /**
   * The nice value each pool thread gives itself on Linux (0: as the event loop), so that the loop
   * takes a core from a thread computing when it has a request to read or an answer to send. Off
   * by default: it shortens the loop's waits but lengthens the jobs' (docs/configuration.md).
   */
  readonly threadNice: number
  /**
   * Admission by queueing delay (src/admission.ts), for the pool's queue and for the event loop
   * apart. Once a queue's delay has stayed over its target for its interval, a job is refused
   * (503) while the delay is over the target; before that, while it is within the interval (a
   * burst). A target of 0 turns that queue's shedding off.
   */
  readonly shedTargetMs: number
  readonly shedIntervalMs: number
  readonly shedLoopTargetMs: number
  readonly shedLoopIntervalMs: number
  /** A request (headers and body) not fully received by then is answered 408 and closed. */
  readonly requestTimeoutMs: number
  /** Headers not fully received by then: the connection is closed (slowloris). */
  readonly headersTimeoutMs: number
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number
  /** PostgreSQL for the user service and the `db`/`cache` tasks; unset: they answer NOT_CONFIGURED. */
  readonly databaseUrl: string | undefined
  /** Redis for the user cache and the `cache` task; unset: NOT_CONFIGURED (reads bypass the cache). */
  readonly redisUrl: string | undefined
  /** pg pool per process: connections kept open when idle, and at most. */
  readonly pgPoolMin: number
  readonly pgPoolMax: number
  /** PostgreSQL's statement_timeout for every statement (asyncpg's command_timeout): past it, 504. */
  readonly pgStatementTimeoutMs: number
  /** A pooled connection is closed and replaced after this many uses (asyncpg's max_queries). */
  readonly pgMaxUses: number
  /** Connecting, or waiting for a free pooled connection, longer than this: 503 BACKEND_UNAVAILABLE. */
  readonly pgConnectTimeoutMs: number
  /** A Redis command not answered within this fails (a cache read then goes to PostgreSQL). */
  readonly redisCommandTimeoutMs: number
  /** How long a user read from PostgreSQL stays in Redis. */
  readonly userCacheTtlS: number
  /** Registers the `fault` task (throws, exits its thread, exhausts its heap, loops): for fault tests only. */
  readonly faultTasks: boolean
  /**
   * The `spin` task's work per ms of CPU, pinned; undefined: each thread measures it at its first
   * `spin` job. The task reads the variable itself (cpu-tasks/spin.ts); it is checked here.
   */
  readonly spinIterationsPerMs: number | undefined
}

/** A bad environment value: names the variable, the value and what is allowed. */
export class ConfigError extends Error {
  readonly code = 'BAD_CONFIG'
  constructor (
    readonly variable: string,
    readonly value: string,
    readonly allowed: string
  ) {
    super(`${variable}=${JSON.stringify(value)} is not allowed: ${allowed}`)
    this.name = 'ConfigError'
  }
}

interface Preset {
  processes: number
  /** Threads per process, given the effective process count. */
  threads: (processes: number) => number
  cpuJobs: CpuPlacement
  ioJobs: IoPlacement
}

/**
 * The classic matrix's four rows. `threads` stands for ThreadPoolExecutor(max_workers=50): up to 50
 * threads, started on demand and kept (IDLE_THREAD_MS). `hybrid` gives each process
 * floor(cores / processes) pool threads, so that the threads doing CPU work never outnumber the
 * cores: the event loops mostly wait, the pool threads compute, and a thread more than there are
 * cores only time-slices and costs another V8 isolate.
 */
export function presets (cores: number): Readonly<Record<Mode, Preset>> {
  return {
    'event-loop': { processes: 1, threads: () => 1, cpuJobs: 'inline', ioJobs: 'event-loop' },
    threads: { processes: 1, threads: () => 50, cpuJobs: 'pool', ioJobs: 'pool' },
    processes: { processes: cores, threads: () => 1, cpuJobs: 'inline', ioJobs: 'event-loop' },
    hybrid: { processes: cores, threads: (p) => Math.max(1, Math.floor(cores / p)), cpuJobs: 'pool', ioJobs: 'event-loop' },
    // hybrid's layout, each CPU job inline or on the pool by its task's measured cost (src/placement/auto-rule.ts).
    auto: { processes: cores, threads: (p) => Math.max(1, Math.floor(cores / p)), cpuJobs: 'auto', ioJobs: 'event-loop' }
  }
}

export const DEFAULTS = Object.freeze({
  mode: 'hybrid' as Mode,
  port: 3000,
  host: '127.0.0.1',
  jobTimeoutMs: 30_000,
  maxQueue: 1000,
  logLevel: 'info' as LogLevel,
  wsMaxInFlight: 1000,
  wsMaxFrameBytes: 1024 * 1024,
  wsMaxBufferedBytes: 4 * 1024 * 1024,
  wsPingIntervalMs: 30_000,
  threadHeapMb: 2048,
  threadNice: 0,
  shedTargetMs: 50,
  shedIntervalMs: 100,
  shedLoopTargetMs: 10,
  shedLoopIntervalMs: 100,
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  keepAliveTimeoutMs: 10_000,
  pgPoolMin: 2,
  pgPoolMax: 10,
  pgStatementTimeoutMs: 1500,
  pgMaxUses: 50_000,
  pgConnectTimeoutMs: 1000,
  redisCommandTimeoutMs: 500,
  userCacheTtlS: 300
})

type Env = Readonly<Record<string, string | undefined>>

/** Reads the environment once: presets first, explicit flags over them, every value checked. */
export function parseConfig (env: Env = process.env, cores: number = availableParallelism()): Config {
  const read = (name: string): string | undefined => {
    const value = env[name]
    return value === undefined || value.trim() === '' ? undefined : value
  }

  const mode = oneOf('MODE', read('MODE'), MODES) ?? DEFAULTS.mode
  const preset = presets(cores)[mode]
  const processes = integer('PROCESSES', read('PROCESSES'), 1, 1024) ?? preset.processes
  const threads = integer('THREADS', read('THREADS'), 1, 1024) ?? preset.threads(processes)
  const cpuJobs = oneOf('CPU_JOBS', read('CPU_JOBS'), CPU_PLACEMENTS) ?? preset.cpuJobs
  const redisUrl = serviceUrl('REDIS_URL', read('REDIS_URL'), ['redis:', 'rediss:'])
  const dispatch = oneOf('DISPATCH', read('DISPATCH'), DISPATCHES) ?? 'local'
  if (dispatch === 'bullmq' && redisUrl === undefined) {
    throw new ConfigError('DISPATCH', 'bullmq', 'expected with REDIS_URL, the Redis its queue lives on')
  }
  if (dispatch === 'bullmq' && cpuJobs !== 'pool') {
    throw new ConfigError('DISPATCH', 'bullmq', `expected with CPU_JOBS=pool (it sends the jobs a pool would run to worker hosts), not ${cpuJobs}`)
  }

  return Object.freeze({
    mode,
    processes,
    threads,
    minThreads: Math.min(threads, cores),
    cpuJobs,
    ioJobs: oneOf('IO_JOBS', read('IO_JOBS'), IO_PLACEMENTS) ?? preset.ioJobs,
    dispatch,
    port: integer('PORT', read('PORT'), 0, 65_535) ?? DEFAULTS.port,
    host: hostname('HOST', read('HOST')) ?? DEFAULTS.host,
    jobTimeoutMs: integer('JOB_TIMEOUT_MS', read('JOB_TIMEOUT_MS'), 1, 3_600_000) ?? DEFAULTS.jobTimeoutMs,
    maxQueue: integer('MAX_QUEUE', read('MAX_QUEUE'), 0, 1_000_000) ?? DEFAULTS.maxQueue,
    upstreamUrl: httpUrl('UPSTREAM_URL', read('UPSTREAM_URL')),
    logLevel: oneOf('LOG_LEVEL', read('LOG_LEVEL'), LOG_LEVELS) ?? DEFAULTS.logLevel,
    authToken: token('AUTH_TOKEN', env.AUTH_TOKEN),
    wsMaxInFlight: integer('WS_MAX_IN_FLIGHT', read('WS_MAX_IN_FLIGHT'), 1, 1_000_000) ?? DEFAULTS.wsMaxInFlight,
    wsMaxFrameBytes: integer('WS_MAX_FRAME_BYTES', read('WS_MAX_FRAME_BYTES'), 64, 64 * 1024 * 1024) ?? DEFAULTS.wsMaxFrameBytes,
    wsMaxBufferedBytes: integer('WS_MAX_BUFFERED_BYTES', read('WS_MAX_BUFFERED_BYTES'), 1024, 1024 * 1024 * 1024) ?? DEFAULTS.wsMaxBufferedBytes,
    wsPingIntervalMs: integer('WS_PING_INTERVAL_MS', read('WS_PING_INTERVAL_MS'), 100, 3_600_000) ?? DEFAULTS.wsPingIntervalMs,
    threadHeapMb: integer('THREAD_HEAP_MB', read('THREAD_HEAP_MB'), 16, 65_536) ?? DEFAULTS.threadHeapMb,
    threadNice: integer('THREAD_NICE', read('THREAD_NICE'), 0, 19) ?? DEFAULTS.threadNice,
    shedTargetMs: integer('SHED_TARGET_MS', read('SHED_TARGET_MS'), 0, 60_000) ?? DEFAULTS.shedTargetMs,
    shedIntervalMs: integer('SHED_INTERVAL_MS', read('SHED_INTERVAL_MS'), 1, 60_000) ?? DEFAULTS.shedIntervalMs,
    shedLoopTargetMs: integer('SHED_LOOP_TARGET_MS', read('SHED_LOOP_TARGET_MS'), 0, 60_000) ?? DEFAULTS.shedLoopTargetMs,
    shedLoopIntervalMs: integer('SHED_LOOP_INTERVAL_MS', read('SHED_LOOP_INTERVAL_MS'), 1, 60_000) ?? DEFAULTS.shedLoopIntervalMs,
    ...httpTimeouts(read),
    databaseUrl: serviceUrl('DATABASE_URL', read('DATABASE_URL'), ['postgres:', 'postgresql:']),
    redisUrl,
    ...pgPool(read),
    pgStatementTimeoutMs: integer('PG_STATEMENT_TIMEOUT_MS', read('PG_STATEMENT_TIMEOUT_MS'), 1, 3_600_000) ?? DEFAULTS.pgStatementTimeoutMs,
    pgMaxUses: integer('PG_MAX_USES', read('PG_MAX_USES'), 1, 1_000_000_000) ?? DEFAULTS.pgMaxUses,
    pgConnectTimeoutMs: integer('PG_CONNECT_TIMEOUT_MS', read('PG_CONNECT_TIMEOUT_MS'), 1, 600_000) ?? DEFAULTS.pgConnectTimeoutMs,
    redisCommandTimeoutMs: integer('REDIS_COMMAND_TIMEOUT_MS', read('REDIS_COMMAND_TIMEOUT_MS'), 1, 600_000) ?? DEFAULTS.redisCommandTimeoutMs,
    userCacheTtlS: integer('USER_CACHE_TTL_S', read('USER_CACHE_TTL_S'), 1, 31_536_000) ?? DEFAULTS.userCacheTtlS,
    faultTasks: (oneOf('FAULT_TASKS', read('FAULT_TASKS'), ['on', 'off'] as const) ?? 'off') === 'on',
    spinIterationsPerMs: integer('SPIN_ITERATIONS_PER_MS', read('SPIN_ITERATIONS_PER_MS'), 1000, 1_000_000_000)
  })
}

/** Whether any job runs on a Piscina pool in this configuration (`auto` may put any CPU job there). */
export function usesPool (config: Pick<Config, 'cpuJobs' | 'ioJobs'> & { dispatch?: Dispatch }): boolean {
  return (config.cpuJobs !== 'inline' && config.dispatch !== 'bullmq') || config.ioJobs === 'pool'
}

function oneOf<T extends string> (name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined
  if ((allowed as readonly string[]).includes(value)) return value as T
  throw new ConfigError(name, value, `expected one of ${allowed.join(', ')}`)
}

function integer (name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN
  if (Number.isSafeInteger(n) && n >= min && n <= max) return n
  throw new ConfigError(name, value, `expected an integer from ${min} to ${max}`)
}

function pgPool (read: (name: string) => string | undefined): Pick<Config, 'pgPoolMin' | 'pgPoolMax'> {
  const pgPoolMax = integer('PG_POOL_MAX', read('PG_POOL_MAX'), 1, 1000) ?? DEFAULTS.pgPoolMax
  const min = read('PG_POOL_MIN')
  const pgPoolMin = integer('PG_POOL_MIN', min, 0, 1000) ?? Math.min(DEFAULTS.pgPoolMin, pgPoolMax)
  if (pgPoolMin > pgPoolMax) throw new ConfigError('PG_POOL_MIN', min as string, `expected at most PG_POOL_MAX (${pgPoolMax})`)
  return { pgPoolMin, pgPoolMax }
}

/** A server's URL with one of the schemes given; the password, if any, is never echoed back. */
function serviceUrl (name: string, value: string | undefined, schemes: readonly string[]): string | undefined {
  if (value === undefined) return undefined
  let url: URL | undefined
  try {
    url = new URL(value)
  } catch {}
  if (url !== undefined && schemes.includes(url.protocol) && url.hostname !== '') return value
  throw new ConfigError(name, value.replace(/\/\/[^@/]*@/, '//***@'), `expected a ${schemes.map((s) => `${s}//`).join(' or ')} URL`)
}

/** Node requires headers to time out no later than the whole request. */
function httpTimeouts (read: (name: string) => string | undefined): Pick<Config, 'requestTimeoutMs' | 'headersTimeoutMs' | 'keepAliveTimeoutMs'> {
  const requestTimeoutMs = integer('REQUEST_TIMEOUT_MS', read('REQUEST_TIMEOUT_MS'), 100, 3_600_000) ?? DEFAULTS.requestTimeoutMs
  const headers = read('HEADERS_TIMEOUT_MS')
  const headersTimeoutMs = integer('HEADERS_TIMEOUT_MS', headers, 100, 3_600_000) ?? Math.min(DEFAULTS.headersTimeoutMs, requestTimeoutMs)
  if (headersTimeoutMs > requestTimeoutMs) throw new ConfigError('HEADERS_TIMEOUT_MS', headers as string, `expected at most REQUEST_TIMEOUT_MS (${requestTimeoutMs})`)
  const keepAliveTimeoutMs = integer('KEEP_ALIVE_TIMEOUT_MS', read('KEEP_ALIVE_TIMEOUT_MS'), 100, 3_600_000) ?? DEFAULTS.keepAliveTimeoutMs
  return { requestTimeoutMs, headersTimeoutMs, keepAliveTimeoutMs }
}

function hostname (name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  if (/^[A-Za-z0-9.:-]{1,253}$/.test(value)) return value
  throw new ConfigError(name, value, 'expected an IP address or a host name')
}

/**
 * A bearer token: unset stays unset, but a set one must be usable in a header (an empty one would be a
 * silent mistake).
 */
function token (name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  if (/^[\x21-\x7e]{1,4096}$/.test(value)) return value
  throw new ConfigError(name, value.length > 20 ? `${value.slice(0, 20)}...` : value, 'expected 1 to 4096 printable ASCII characters, no spaces')
}

function httpUrl (name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  let url: URL | undefined
  try {
    url = new URL(value)
  } catch {}
  if (url !== undefined && (url.protocol === 'http:' || url.protocol === 'https:')) return url.href.replace(/\/$/, '')
  throw new ConfigError(name, value, 'expected an http:// or https:// URL')
}
