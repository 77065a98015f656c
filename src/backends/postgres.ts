import pg from 'pg'
import type { Config } from '../config.js'
import { errors } from '../errors.js'

export type PgConfig = Pick<Config, 'databaseUrl' | 'pgPoolMin' | 'pgPoolMax' | 'pgStatementTimeoutMs' | 'pgMaxUses' | 'pgConnectTimeoutMs'>

/**
 * The pg pool of one process (or one pool thread), with every bound the article's asyncpg pool had:
 * min and max size, a statement timeout (command_timeout), a connection recycled after N uses
 * (max_queries); plus a bound on connecting or waiting for a free connection, so that a database
 * that is down or saturated fails a request in about a second instead of hanging it.
 */
export function createPgPool (config: PgConfig & { databaseUrl: string }, onError: (err: Error) => void): pg.Pool {
  const pool = new pg.Pool({
    connectionString: config.databaseUrl,
    min: config.pgPoolMin,
    max: config.pgPoolMax,
    maxUses: config.pgMaxUses,
    connectionTimeoutMillis: config.pgConnectTimeoutMs,
    idleTimeoutMillis: 30_000,
    // The server stops the statement; the client also stops waiting a little later, in case the
    // server (or the network to it) cannot answer at all.
    statement_timeout: config.pgStatementTimeoutMs,
    query_timeout: config.pgStatementTimeoutMs + 500,
    application_name: 'concurrency-matrix'
  })
  // An idle connection that dies (the server restarted) is reported here; without a listener it
  // would crash the process. The pool drops it and connects anew on the next query.
  pool.on('error', onError)
  return pool
}

/** SQLSTATE classes and driver messages that mean "cannot reach the database now". */
const UNAVAILABLE = /^(08|57P0[1-3]|53300)/

/**
 * A pg error as one of the catalogue's: unreachable or shutting down -> 503 BACKEND_UNAVAILABLE,
 * statement or read timeout -> 504 TIMEOUT, unique violation -> 409 CONFLICT, data it refuses ->
 * 400 BAD_INPUT. Anything else is a
 * bug or a schema problem, and stays what it is (a 500 with a fixed message).
 */
export function pgError (err: unknown, timeoutMs: number): Error {
  const e = err as { code?: unknown, message?: unknown, detail?: unknown }
  const code = typeof e.code === 'string' ? e.code : ''
  const message = typeof e.message === 'string' ? e.message : ''
  if (code === '57014' || message === 'Query read timeout') return new errors.TIMEOUT(timeoutMs)
  if (code === '23505') return new errors.CONFLICT(`already exists: ${typeof e.detail === 'string' ? e.detail : 'a unique value'}`)
  // Data PostgreSQL refuses (a NUL character in text, a CHECK constraint): the client's input, not a bug.
  if (code.startsWith('22') || code === '23514') return new errors.BAD_INPUT(`PostgreSQL refused the data: ${message.slice(0, 200)}`)
  if (UNAVAILABLE.test(code) || /^E(CONNREFUSED|CONNRESET|HOSTUNREACH|NOTFOUND|PIPE|TIMEDOUT)$/.test(code) ||
      /timeout exceeded when trying to connect|Connection terminated|connect ECONNREFUSED|Client has encountered a connection error/i.test(message)) {
    return new errors.BACKEND_UNAVAILABLE('PostgreSQL')
  }
  return err instanceof Error ? err : new Error(String(err))
}
