import { parseArgs } from 'node:util'

export interface JobSpec {
  task: string
  input: Record<string, unknown>
  weight: number
}

/** The cheapest CPU job, whose run is next to nothing: what a request and the job path cost alone. */
export const TRIVIAL_JOB: Omit<JobSpec, 'weight'> = { task: 'fib', input: { n: 1 } }
/** A load of nothing but TRIVIAL_JOB (read, never changed, by the load client). */
export const TRIVIAL_MIX: JobSpec[] = [{ ...TRIVIAL_JOB, weight: 1 }]

export interface LoadOptions {
  url: string
  transport: 'http' | 'ws'
  encoding: 'json' | 'msgpack'
  connections: number
  /** Jobs in flight per connection (closed loop); with `rate`, at most this many before a send waits. */
  inFlight: number
  /** Seconds to send for; ignored when `count` is set. */
  duration: number
  /** Total jobs to send, then wait for them all. */
  count: number | undefined
  /** Target jobs per second across all connections (open loop); closed loop when unset. */
  rate: number | undefined
  mix: JobSpec[]
  token: string | undefined
  /** A job not answered in this long counts as a CLIENT_TIMEOUT error. */
  timeoutMs: number
  /** A pid whose process tree's RSS is sampled during the run. */
  pid: number | undefined
  out: string | undefined
  progress: boolean
  /** HTTP only: GET this path instead of posting jobs (to load a route such as /health). */
  path?: string
  /**
   * With a duration: stop at its end, abandoning the jobs still in flight (their connections are
   * closed, so the server cancels them) instead of waiting for their answers. They are counted
   * apart, and their age at the cut goes into the latencies as a lower bound.
   */
  cut?: boolean
  /**
   * Seconds at the start during which nothing is counted: the load ramps up (connections, jobs in
   * flight) and only what completes after is measured, over duration - rampS.
   */
  rampS?: number
  /**
   * HTTP only: open every connection before the clock starts, each with one `GET /health` (its
   * answer, whatever its status, says the server has taken the connection), as a WebSocket is
   * always opened first. Without it an HTTP connection opens with its first job, inside the run:
   * node:cluster's primary accepts each connection and hands it to a worker, and 5,000 of them
   * at once take long enough on two cores to reach past a window's ramp (docs/performance.md,
   * "Connections through the cluster's primary").
   */
  openFirst?: boolean
  /**
   * A job whose connection failed under it (reset, closed: its server process died) is sent again
   * this many times, on a new connection where the old one is gone. A refusal or a timeout is an
   * answer and is not retried. 0 unless set.
   */
  retries?: number
}

/** Options for a run started from code: the command line's defaults, no progress lines, `over` laid on top. */
export function loadDefaults (url: string, over: Partial<LoadOptions> = {}): LoadOptions {
  return {
    url,
    transport: 'http',
    encoding: 'json',
    connections: 10,
    inFlight: 1,
    duration: 10,
    count: undefined,
    rate: undefined,
    mix: [{ task: 'fib', input: { n: 20 }, weight: 1 }],
    token: undefined,
    timeoutMs: 60_000,
    pid: undefined,
    out: undefined,
    progress: false,
    ...over
  }
}

export const USAGE = `npm run load -- [options]
  --url URL            server (http://127.0.0.1:3000)
  --transport http|ws  HTTP/1.1 (undici, pipelined) or WebSocket (ws) (http)
  --encoding json|msgpack                                           (json)
  --connections N      connections (10)
  --in-flight M        jobs in flight per connection (1)
  --duration S         seconds to send for (10)
  --count N            send N jobs in all instead, then wait for their answers
  --rate R             open loop at R jobs/s in all, instead of closed loop
  --job SPEC           repeatable: TASK[:INPUT_JSON][@WEIGHT], e.g. 'fib:{"n":30}@3' 'sleep:{"ms":100}'
                       (fib:{"n":20})
  --token T            bearer token, for a server with AUTH_TOKEN
  --timeout-ms MS      a job unanswered this long is an error (60000)
  --pid PID            sample this process tree's RSS during the run
  --path PATH          HTTP only: GET PATH instead of posting jobs (e.g. /health)
  --cut                at the end of --duration, abandon the jobs still in flight instead of waiting
  --open-first         HTTP only: open every connection (one GET /health each) before the clock starts
  --retries N          send a job again (up to N times) when its connection fails under it (0)
  --out FILE           write the report as JSON
  --quiet              no progress lines`

function positive (
  name: string, raw: string | undefined, fallback: number | undefined, integer = true
): number | undefined {
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, not ${JSON.stringify(raw)}`)
  return n
}

/** TASK[:INPUT_JSON][@WEIGHT] */
export function parseJob (spec: string): JobSpec {
  const match = /^([a-z][a-z0-9-]*)(?::(\{.*\}))?(?:@(\d+(?:\.\d+)?))?$/.exec(spec)
  if (match === null) throw new Error(`--job ${JSON.stringify(spec)}: expected TASK[:INPUT_JSON][@WEIGHT]`)
  const [, task = '', input, weight] = match
  return {
    task,
    input: input === undefined
      ? {}
      : JSON.parse(input) as Record<string,
    unknown>,
    weight: weight === undefined ? 1 : Number(weight)
  }
}

export function parseOptions (argv: string[]): LoadOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      url: { type: 'string' },
      transport: { type: 'string' },
      encoding: { type: 'string' },
      connections: { type: 'string' },
      'in-flight': { type: 'string' },
      duration: { type: 'string' },
      count: { type: 'string' },
      rate: { type: 'string' },
      job: { type: 'string', multiple: true },
      token: { type: 'string' },
      'timeout-ms': { type: 'string' },
      pid: { type: 'string' },
      out: { type: 'string' },
      path: { type: 'string' },
      cut: { type: 'boolean' },
      'open-first': { type: 'boolean' },
      retries: { type: 'string' },
      quiet: { type: 'boolean' }
    }
  })
  const transport = values.transport ?? 'http'
  if (transport !== 'http' && transport !== 'ws') throw new Error('--transport must be http or ws')
  const encoding = values.encoding ?? 'json'
  if (encoding !== 'json' && encoding !== 'msgpack') throw new Error('--encoding must be json or msgpack')
  return {
    url: (values.url ?? 'http://127.0.0.1:3000').replace(/\/$/, ''),
    transport,
    encoding,
    connections: positive('connections', values.connections, 10) as number,
    inFlight: positive('in-flight', values['in-flight'], 1) as number,
    duration: positive('duration', values.duration, 10, false) as number,
    count: positive('count', values.count, undefined),
    rate: positive('rate', values.rate, undefined, false),
    mix: (values.job ?? ['fib:{"n":20}']).map(parseJob),
    token: values.token,
    timeoutMs: positive('timeout-ms', values['timeout-ms'], 60_000) as number,
    pid: positive('pid', values.pid, undefined),
    out: values.out,
    progress: values.quiet !== true,
    ...(values.path === undefined ? {} : { path: values.path }),
    cut: values.cut === true,
    ...(values['open-first'] === true ? { openFirst: true } : {}),
    ...(values.retries === undefined ? {} : { retries: positive('retries', values.retries, 0) as number })
  }
}
