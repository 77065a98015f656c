/**
 * What a task or a route sees of PostgreSQL and Redis: narrow handles, their failures already
 * errors of the catalogue. This module loads no driver: a pool thread that never runs a job that
 * needs a backend never loads pg or ioredis (connections.ts does, when it opens them).
 */
import { errors } from '../errors.js'

/**
 * PostgreSQL as a task or a route sees it: statements on a bounded pool, failures already coded (503,
 * 504, 409, 400).
 */
export interface Postgres {
  query: <Row extends object>(text: string, values?: readonly unknown[]) => Promise<Row[]>
}

/** Redis as a task or a route sees it: three commands, failures already coded (503, 504). */
export interface KeyValue {
  get: (key: string) => Promise<string | null>
  /** Stores `value` for USER_CACHE_TTL_S. */
  set: (key: string, value: string) => Promise<void>
  incr: (key: string) => Promise<number>
}

/** What a job or a request may reach: each is absent when its URL is not configured. */
export interface BackendHandles {
  readonly postgres?: Postgres
  readonly redis?: KeyValue
}

/** A handle a route or a task cannot do without, or NOT_CONFIGURED naming the variable that is missing. */
export function need<T> (handle: T | undefined, what: string, variable: 'DATABASE_URL' | 'REDIS_URL'): T {
  if (handle === undefined) throw new errors.NOT_CONFIGURED(what, variable)
  return handle
}
