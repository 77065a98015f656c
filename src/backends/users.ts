import type pg from 'pg'
import type { Redis } from 'ioredis'
import type { Config } from '../config.js'
import { errors } from '../errors.js'
import { getFromUpstream } from '../tasks/upstream-client.js'
import { createPgPool, pgError } from './postgres.js'
import { createRedis, readyWithin, redisError } from './redis.js'
import { ensureSchema } from './schema.js'

export interface User {
  id: number
  name: string
  email: string
  createdAt: string
}

export interface NewUser {
  name: string
  email: string
}

/** Where a user read came from: Redis (`hit`), PostgreSQL then cached (`miss`), or PostgreSQL with Redis unreachable (`bypass`). */
export type CacheState = 'hit' | 'miss' | 'bypass'

export interface GatherFailure {
  source: 'postgres' | 'redis' | 'delay-service'
  code: string
  message: string
}

export interface ProductsAnswer {
  products: Array<{ id: number, name: string, priceCents: number, stock: number }> | null
  views: number | null
  recommendations: { from: string, delayMs: number } | null
  failed: GatherFailure[]
}

export type UserServiceConfig = Pick<Config, 'databaseUrl' | 'redisUrl' | 'pgPoolMin' | 'pgPoolMax' | 'pgStatementTimeoutMs' |
  'pgMaxUses' | 'pgConnectTimeoutMs' | 'redisCommandTimeoutMs' | 'userCacheTtlS' | 'upstreamUrl'>

/** The part of the configuration the user service reads (given to pool threads as it is). */
export function userServiceConfig (config: UserServiceConfig): UserServiceConfig {
  const { databaseUrl, redisUrl, pgPoolMin, pgPoolMax, pgStatementTimeoutMs, pgMaxUses, pgConnectTimeoutMs, redisCommandTimeoutMs, userCacheTtlS, upstreamUrl } = config
  return { databaseUrl, redisUrl, pgPoolMin, pgPoolMax, pgStatementTimeoutMs, pgMaxUses, pgConnectTimeoutMs, redisCommandTimeoutMs, userCacheTtlS, upstreamUrl }
}

interface Logger {
  warn: (obj: object, msg: string) => void
}

const USER_COLUMNS = 'id, name, email, created_at'
/** The delay service stands in for a recommendation service: 20 ms away, 1 s at most. */
const RECOMMENDATIONS_DELAY_MS = 20
const GATHER_UPSTREAM_TIMEOUT_MS = 1000

const toUser = (row: { id: string | number, name: string, email: string, created_at: Date }): User =>
  ({ id: Number(row.id), name: row.name, email: row.email, createdAt: row.created_at.toISOString() })

const cacheKey = (id: number): string => `user:${id}`

/** A cached user, or undefined for anything else under its key (read as a miss, then overwritten). */
function parseCached (text: string): User | undefined {
  try {
    const value = JSON.parse(text) as Partial<User> | null
    return typeof value?.id === 'number' && typeof value.email === 'string' ? value as User : undefined
  } catch {
    return undefined
  }
}

/**
 * The seed's AsyncWebService on PostgreSQL and Redis: cache-aside reads, batch inserts in one
 * transaction, and a gather over several sources that answers with what succeeded. Either backend
 * may be unset (NOT_CONFIGURED), down (503 BACKEND_UNAVAILABLE within about a second, never a
 * hang) or slow (504 TIMEOUT); it recovers by itself when the backend comes back.
 */
export class UserService {
  readonly #pg: pg.Pool | undefined
  readonly #redis: Redis | undefined
  readonly #config: UserServiceConfig
  #schema: Promise<void> | undefined
  #loggedDown = { pg: false, redis: false }

  constructor (config: UserServiceConfig, private readonly log: Logger) {
    this.#config = config
    this.#pg = config.databaseUrl === undefined
      ? undefined
      : createPgPool({ ...config, databaseUrl: config.databaseUrl }, (err) => this.#down('pg', err))
    this.#redis = config.redisUrl === undefined
      ? undefined
      : createRedis({ ...config, redisUrl: config.redisUrl }, (err) => this.#down('redis', err))
    this.#redis?.on('ready', () => { this.#loggedDown.redis = false })
  }

  /** Waits (briefly) for the backends at start-up, so the first requests find them ready; never fails. */
  async warmUp (): Promise<void> {
    await Promise.all([
      this.#redis === undefined ? undefined : readyWithin(this.#redis, 2000),
      this.#pg === undefined ? undefined : this.#ensureSchema().catch((err: unknown) => this.#down('pg', err as Error))
    ])
  }

  get configured (): { postgres: boolean, redis: boolean } {
    return { postgres: this.#pg !== undefined, redis: this.#redis !== undefined }
  }

  /** Cache-aside: Redis first; on a miss PostgreSQL, then cached for USER_CACHE_TTL_S. */
  async getUser (id: number): Promise<{ user: User | undefined, cache: CacheState }> {
    const pool = this.#needPg('reading a user')
    let cache: CacheState = 'miss'
    if (this.#redis !== undefined) {
      try {
        const cached = await this.#redis.get(cacheKey(id))
        const user = cached === null ? undefined : parseCached(cached)
        if (user !== undefined) return { user, cache: 'hit' }
      } catch (err) {
        this.#down('redis', err as Error)
        cache = 'bypass'
      }
    } else {
      cache = 'bypass'
    }
    const user = await this.#readUser(pool, id)
    if (user !== undefined && cache === 'miss') {
      // A failed write to the cache costs the next read a miss, not this one its answer.
      await this.#redis?.set(cacheKey(id), JSON.stringify(user), 'EX', this.#config.userCacheTtlS).catch((err: unknown) => this.#down('redis', err as Error))
    }
    return { user, cache }
  }

  /** PostgreSQL only, no cache. */
  async readUser (id: number): Promise<User | undefined> {
    return await this.#readUser(this.#needPg('reading a user'), id)
  }

  /** Inserts every user or none, in one transaction; the new ids in input order. */
  async createUsers (users: readonly NewUser[]): Promise<number[]> {
    const pool = this.#needPg('creating users')
    await this.#ensureSchema()
    let client: pg.PoolClient
    try {
      client = await pool.connect()
    } catch (err) {
      throw pgError(err, this.#config.pgStatementTimeoutMs)
    }
    let broken: Error | undefined
    try {
      await client.query('BEGIN')
      const { rows } = await client.query<{ id: string, email: string }>(
        `INSERT INTO users (name, email)
           SELECT name, email FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(name, email, n) ORDER BY n
           RETURNING id, email`,
        [users.map((u) => u.name), users.map((u) => u.email)])
      await client.query('COMMIT')
      // Emails are unique: map back to input order whatever order RETURNING gave.
      const ids = new Map(rows.map((r) => [r.email, Number(r.id)]))
      return users.map((u) => ids.get(u.email) as number)
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackErr: unknown) => { broken = rollbackErr as Error })
      throw pgError(err, this.#config.pgStatementTimeoutMs)
    } finally {
      // A connection whose rollback failed is in an unknown state: the pool discards it.
      client.release(broken)
    }
  }

  /**
   * The seed's gather: products from PostgreSQL, a view counter from Redis and recommendations
   * from the delay service, at once. What fails is listed, like gather(..., return_exceptions=True).
   */
  async products (): Promise<ProductsAnswer> {
    if (this.#pg === undefined && this.#redis === undefined) throw new errors.NOT_CONFIGURED('the products gather', 'DATABASE_URL or REDIS_URL')
    const [products, views, recommendations] = await Promise.allSettled([
      (async () => {
        const pool = this.#needPg('listing products')
        await this.#ensureSchema()
        const { rows } = await pool.query<{ id: number, name: string, price_cents: number, stock: number }>(
          'SELECT id, name, price_cents, stock FROM products ORDER BY id LIMIT 50').catch((err: unknown) => { throw pgError(err, this.#config.pgStatementTimeoutMs) })
        return rows.map((r) => ({ id: r.id, name: r.name, priceCents: r.price_cents, stock: r.stock }))
      })(),
      (async () => {
        if (this.#redis === undefined) throw new errors.NOT_CONFIGURED('the view counter', 'REDIS_URL')
        return await this.#redis.incr('products:views').catch((err: unknown) => { throw redisError(err, this.#config.redisCommandTimeoutMs) })
      })(),
      (async () => {
        await getFromUpstream(this.#config.upstreamUrl, `/delay/${RECOMMENDATIONS_DELAY_MS}`, AbortSignal.timeout(GATHER_UPSTREAM_TIMEOUT_MS))
          .catch((err: unknown) => { throw (err as Error).name === 'TimeoutError' ? new errors.TIMEOUT(GATHER_UPSTREAM_TIMEOUT_MS) : err })
        return { from: 'delay-service', delayMs: RECOMMENDATIONS_DELAY_MS }
      })()
    ])
    const failed: GatherFailure[] = []
    const value = <T>(source: GatherFailure['source'], r: PromiseSettledResult<T>): T | null => {
      if (r.status === 'fulfilled') return r.value
      const e = r.reason as { code?: unknown, message?: unknown }
      const known = typeof e.code === 'string' && /^[A-Z_]+$/.test(e.code)
      failed.push({ source, code: known ? e.code as string : 'INTERNAL_ERROR', message: known && typeof e.message === 'string' ? e.message : 'failed' })
      return null
    }
    const answer = { products: value('postgres', products), views: value('redis', views), recommendations: value('delay-service', recommendations), failed }
    if (failed.length === 3) throw new errors.BACKEND_UNAVAILABLE('Every source of the products gather')
    return answer
  }

  /** Redis only (the `cache` task's `get`/`set`). */
  async cacheGet (key: string): Promise<string | null> {
    return await this.#needRedis().get(key).catch((err: unknown) => { throw redisError(err, this.#config.redisCommandTimeoutMs) })
  }

  async cacheSet (key: string, value: string, ttlS: number): Promise<void> {
    await this.#needRedis().set(key, value, 'EX', ttlS).catch((err: unknown) => { throw redisError(err, this.#config.redisCommandTimeoutMs) })
  }

  async close (): Promise<void> {
    await Promise.all([this.#pg?.end(), this.#redis?.quit().catch(() => this.#redis?.disconnect())])
  }

  async #readUser (pool: pg.Pool, id: number): Promise<User | undefined> {
    await this.#ensureSchema()
    try {
      const { rows } = await pool.query(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id])
      return rows[0] === undefined ? undefined : toUser(rows[0])
    } catch (err) {
      throw pgError(err, this.#config.pgStatementTimeoutMs)
    }
  }

  /** Once per process: retried on the next request after a failure (PostgreSQL was down at start). */
  async #ensureSchema (): Promise<void> {
    if (this.#pg === undefined) return
    this.#schema ??= ensureSchema(this.#pg).then(() => undefined, (err: unknown) => {
      this.#schema = undefined
      throw pgError(err, this.#config.pgStatementTimeoutMs)
    })
    await this.#schema
  }

  #needPg (what: string): pg.Pool {
    if (this.#pg === undefined) throw new errors.NOT_CONFIGURED(what, 'DATABASE_URL')
    return this.#pg
  }

  #needRedis (): Redis {
    if (this.#redis === undefined) throw new errors.NOT_CONFIGURED('the cache', 'REDIS_URL')
    return this.#redis
  }

  /** Logs a backend going down once, not once per failed reconnection or request. */
  #down (backend: 'pg' | 'redis', err: Error): void {
    if (this.#loggedDown[backend]) return
    this.#loggedDown[backend] = true
    this.log.warn({ backend: backend === 'pg' ? 'postgres' : 'redis', err: { message: err.message, code: (err as { code?: unknown }).code } }, 'backend unavailable')
    if (backend === 'pg') setTimeout(() => { this.#loggedDown.pg = false }, 10_000).unref()
  }
}
