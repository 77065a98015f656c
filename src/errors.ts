import { STATUS_CODES } from 'node:http'
import createError, { type FastifyErrorConstructor } from '@fastify/error'

/**
 * An error that is the server answering as designed (bad input, a refusal under load, a timeout, a
 * client gone): built without a stack trace. Its stack would only say where the server noticed,
 * the log gets its code and message, and capturing one cost a refusal about a third of its event
 * loop's CPU (docs/performance.md, "What a refusal costs"): at twice a loop's capacity it refuses
 * as many jobs as it runs.
 */
const answer = (code: string, message: string, statusCode: number): FastifyErrorConstructor =>
  createError(code, message, statusCode, Error, false)

/**
 * The one catalogue of errors that users see (docs/api.md, "Errors": a test holds the two to each
 * other). Each key is its code. 5xx messages are fixed text: no stack and no internal detail ever
 * leaves the server, the detail goes to the log. Those that point at a fault somewhere (a task, the
 * upstream, a backend, this server) keep their stack for that log.
 */
export const errors = {
  BAD_INPUT: answer('BAD_INPUT', '%s', 400),
  UNAUTHORIZED: answer('UNAUTHORIZED', 'Missing or wrong bearer token', 401),
  UNKNOWN_TASK: answer('UNKNOWN_TASK', 'No task named %s; GET /tasks lists them', 404),
  NOT_FOUND: answer('NOT_FOUND', 'Route %s %s not found', 404),
  CONFLICT: answer('CONFLICT', '%s', 409),
  TOO_LARGE: answer('TOO_LARGE', 'Body is larger than %s bytes', 413),
  UNSUPPORTED_MEDIA_TYPE: answer('UNSUPPORTED_MEDIA_TYPE',
    'Content-Type %s is not supported; use application/json or application/msgpack', 415),
  TASK_FAILED: createError('TASK_FAILED', 'Task %s failed', 500),
  UPSTREAM_FAILED: createError('UPSTREAM_FAILED', 'The upstream service failed: %s', 502),
  OVERLOADED: answer('OVERLOADED', 'Overloaded (%s); retry after 1 s', 503),
  NOT_CONFIGURED: answer('NOT_CONFIGURED', 'Task %s needs %s, which is not configured', 503),
  BACKEND_UNAVAILABLE: createError('BACKEND_UNAVAILABLE', '%s is unavailable; retry after 1 s', 503),
  TIMEOUT: answer('TIMEOUT', 'Job did not finish within %s ms', 504),
  /** A bug in this server, never the client's doing. */
  INTERNAL_ERROR: createError('INTERNAL_ERROR', 'Internal server error', 500),
  /** Never sent: the job's client went away (499 as nginx logs it). */
  CANCELLED: answer('CANCELLED', 'The client went away; the job was cancelled', 499)
} as const satisfies Record<string, FastifyErrorConstructor>

export type ErrorCode = keyof typeof errors

/** Each code's HTTP status, read once from the catalogue. */
export const statusOf: Readonly<Record<ErrorCode, number>> = Object.freeze(Object.fromEntries(
  Object.entries(errors).map(([code, E]) => [code, new E().statusCode ?? 500])
) as Record<ErrorCode, number>)

/** An error of the catalogue with a message of the caller's, e.g. one that crossed from a pool thread. */
export function codedError (code: ErrorCode, message: string): Error & { code: ErrorCode, statusCode: number } {
  const Ctor = errors[code] as FastifyErrorConstructor
  return Object.assign(new Ctor(), { code, message, statusCode: statusOf[code] })
}

export interface ErrorBody {
  statusCode: number
  code: ErrorCode
  error: string
  message: string
}

/** Seconds a client is told to wait after OVERLOADED. */
export const RETRY_AFTER_S = 1

interface ErrorLike {
  code?: unknown
  statusCode?: unknown
  message?: unknown
  validation?: unknown
}

const fastifyCodes: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_NOT_FOUND: 'NOT_FOUND'
}

export function isErrorCode (code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(errors, code)
}

/**
 * Any error, ours or Fastify's or a surprise, as the body the client gets. Fastify's own 4xx
 * (bad JSON, empty body, schema validation) become BAD_INPUT; anything unexpected is a 500 that
 * says nothing about its cause.
 */
export function toErrorBody (err: unknown): ErrorBody {
  const e: ErrorLike = typeof err === 'object' && err !== null ? err : {}
  let code: ErrorCode
  let message = typeof e.message === 'string' ? e.message : ''
  if (isErrorCode(e.code)) {
    code = e.code
  } else if (typeof e.code === 'string' && fastifyCodes[e.code] !== undefined) {
    code = fastifyCodes[e.code] as ErrorCode
  } else if (e.validation !== undefined || (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500)) {
    code = 'BAD_INPUT'
  } else {
    code = 'INTERNAL_ERROR'
  }
  const statusCode = statusOf[code]
  if (statusCode >= 500 && !isErrorCode(e.code)) message = new errors.INTERNAL_ERROR().message
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message }
}
