import type pg from 'pg'
import type { Redis } from 'ioredis'
import type { Config } from '../config.js'
import { createPgPool, pgError } from './postgres.js'
import { createRedis, readyWithin, redisError } from './redis.js'
import type { BackendHandles, KeyValue, Postgres } from './handles.js'
import { ensureSchema } from './schema.js'

const BACKEND_SETTINGS = ['databaseUrl', 'redisUrl', 'pgPoolMin', 'pgPoolMax', 'pgStatementTimeoutMs', 'pgMaxUses',
  'pgConnectTimeoutMs', 'redisCommandTimeoutMs', 'userCacheTtlS'] as const satisfies ReadonlyArray<keyof Config>

export type BackendsConfig = Pick<Config, (typeof BACKEND_SETTINGS)[number]>

/** The part of the configuration the backends read (given to pool threads as it is). */
export function backendsConfig (config: BackendsConfig): BackendsConfig {
  return Object.fromEntries(BACKEND_SETTINGS.map((key) => [key, config[key]])) as unknown as BackendsConfig
}

interface Logger {
  warn: (obj: object, msg: string) => void
}

/**
 * The PostgreSQL pool and the Redis connection of one process (or one pool thread), handed out as
 * narrow handles. Either may be unset (its handle is absent), down (503 BACKEND_UNAVAILABLE within
 * about a second, never a hang) or slow (504 TIMEOUT); each recovers by itself when its server
 * comes back. The tables are made (and seeded) before the first statement.
 */
export class Backends implements BackendHandles {
  readonly postgres?: Postgres
  readonly redis?: KeyValue
  readonly #pool: pg.Pool | undefined
  readonly #redis: Redis | undefined
  readonly #pgTimeoutMs: number
  #schema: Promise<void> | undefined
  readonly #loggedDown = { postgres: false, redis: false }

  constructor (config: BackendsConfig, private readonly log: Logger) {
    const { databaseUrl, redisUrl, pgStatementTimeoutMs, redisCommandTimeoutMs, userCacheTtlS } = config
    this.#pgTimeoutMs = pgStatementTimeoutMs
    if (databaseUrl !== undefined) {
      const pool = createPgPool({ ...config, databaseUrl }, (err) => this.#down('postgres', err))
      this.#pool = pool
      this.postgres = {
        query: async <Row extends object>(text: string, values?: readonly unknown[]): Promise<Row[]> => {
          await this.#ensureSchema()
          try {
            return (await pool.query<Row>(text, values as unknown[] | undefined)).rows
          } catch (err) {
            throw this.#failed('postgres', pgError(err, pgStatementTimeoutMs))
          }
        }
      }
    }
    if (redisUrl !== undefined) {
      const redis = createRedis({ ...config, redisUrl }, (err) => this.#down('redis', err))
      redis.on('ready', () => { this.#loggedDown.redis = false })
      this.#redis = redis
      const coded = (err: unknown): never => { throw this.#failed('redis', redisError(err, redisCommandTimeoutMs)) }
      this.redis = {
        get: async (key) => await redis.get(key).catch(coded),
        set: async (key, value) => { await redis.set(key, value, 'EX', userCacheTtlS).catch(coded) },
        incr: async (key) => await redis.incr(key).catch(coded)
      }
    }
  }

  /** Waits (briefly) for the backends at start-up, so that the first requests find them ready; never fails. */
  async warmUp (): Promise<void> {
    await Promise.all([
      this.#redis === undefined ? undefined : readyWithin(this.#redis, 2000),
      this.#ensureSchema().catch(() => {})
    ])
  }

  async close (): Promise<void> {
    await Promise.all([this.#pool?.end(), this.#redis?.quit().catch(() => this.#redis?.disconnect())])
  }

  /** Once per process: tried again on the next statement after a failure (PostgreSQL was down at start). */
  async #ensureSchema (): Promise<void> {
    if (this.#pool === undefined) return
    this.#schema ??= ensureSchema(this.#pool).then(() => undefined, (err: unknown) => {
      this.#schema = undefined
      throw this.#failed('postgres', pgError(err, this.#pgTimeoutMs))
    })
    await this.#schema
  }

  #failed (backend: 'postgres' | 'redis', err: Error): Error {
    if ((err as { code?: unknown }).code === 'BACKEND_UNAVAILABLE') this.#down(backend, err)
    return err
  }

  /** Logs a backend going down once, not once per failed reconnection or request. */
  #down (backend: 'postgres' | 'redis', err: Error): void {
    if (this.#loggedDown[backend]) return
    this.#loggedDown[backend] = true
    this.log.warn({ backend, err: { message: err.message, code: (err as { code?: unknown }).code } }, 'backend unavailable')
    if (backend === 'postgres') setTimeout(() => { this.#loggedDown.postgres = false }, 10_000).unref()
  }
}
