import { pino, type Bindings, type ChildLoggerOptions, type Logger } from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import { usesPool, type Config } from './config.js'

/** The logger of the processes that serve no HTTP (the cluster primary); Fastify makes its own per worker. */
export function createLogger (config: Pick<Config, 'logLevel'>): Logger {
  return pino({ level: config.logLevel })
}

/** The effective configuration, as the start-up line gives it. */
export function describe (config: Config, address: string): Record<string, unknown> {
  return {
    mode: config.mode,
    processes: config.processes,
    threadsPerProcess: usesPool(config) ? config.threads : 0,
    cpuJobs: config.cpuJobs,
    ioJobs: config.ioJobs,
    dispatch: config.dispatch,
    jobTimeoutMs: config.jobTimeoutMs,
    maxQueue: config.maxQueue,
    shedding: {
      queueTargetMs: config.shedTargetMs,
      queueIntervalMs: config.shedIntervalMs,
      loopTargetMs: config.shedLoopTargetMs,
      loopIntervalMs: config.shedLoopIntervalMs
    },
    upstream: config.upstreamUrl,
    address
  }
}

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
type Write = (...args: unknown[]) => void

/**
 * A request's logger that makes its pino child only when a line is written at a level that is on.
 *
 * Fastify gives every request a child logger bound to its request id; pino builds a child with its
 * own formatters and level methods (a microsecond and a dozen objects, per request, profiled in
 * docs/performance.md). With the defaults (`info`, request lines at `debug` only) no request of a
 * healthy server writes a line, so that child is made for nothing. This one holds the parent and
 * the bindings, and makes the child on the first line that would be written: that line, and every
 * line after it, carries the request id as before.
 */
export class RequestLogger implements FastifyBaseLogger {
  readonly #parent: Logger
  readonly #bindings: Bindings
  readonly #options: ChildLoggerOptions
  #child: FastifyBaseLogger | undefined

  constructor (parent: Logger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent
    this.#bindings = bindings
    this.#options = options
  }

  #own (): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options)
    return this.#child
  }

  #write (level: Level, args: unknown[]): void {
    if (this.#child === undefined && !this.#parent.isLevelEnabled(level)) return
    const logger = this.#own()
    ;(logger[level] as Write).apply(logger, args)
  }

  get level (): string { return (this.#child ?? this.#parent).level }
  set level (level: string) { this.#own().level = level }

  fatal (...args: unknown[]): void { this.#write('fatal', args) }
  error (...args: unknown[]): void { this.#write('error', args) }
  warn (...args: unknown[]): void { this.#write('warn', args) }
  info (...args: unknown[]): void { this.#write('info', args) }
  debug (...args: unknown[]): void { this.#write('debug', args) }
  trace (...args: unknown[]): void { this.#write('trace', args) }
  silent (): void {}

  child (bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#own().child(bindings, options)
  }
}

/**
 * Fastify's `childLoggerFactory` for a Fastify that has no logger of its own (src/app.ts says why):
 * each request's logger is a RequestLogger over `logger`, the parent Fastify passes (a logger that
 * writes nothing) set aside.
 */
export function requestLoggers (
  logger: Logger
): (parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions) => FastifyBaseLogger {
  return (_parent, bindings, options) => new RequestLogger(logger, bindings, options)
}
