import { Redis } from 'ioredis'
import type { Config } from '../config.js'
import { errors } from '../errors.js'

export type RedisConfig = Pick<Config, 'redisUrl' | 'redisCommandTimeoutMs'>

/**
 * One Redis connection per process (or pool thread). Commands never queue while it is down
 * (enableOfflineQueue: false): they fail at once, and a cache read falls back to PostgreSQL. It
 * reconnects by itself, every 100 ms to 1 s, for as long as it takes.
 */
export function createRedis (config: RedisConfig & { redisUrl: string }, onError: (err: Error) => void): Redis {
  const redis = new Redis(config.redisUrl, {
    enableOfflineQueue: false,
    commandTimeout: config.redisCommandTimeoutMs,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(times * 100, 1000),
    lazyConnect: false
  })
  // ioredis reports every failed reconnection here; the caller logs the first of a series.
  redis.on('error', onError)
  return redis
}

/** A Redis failure as one of the catalogue's: a command timeout is 504, anything else 503. */
export function redisError (err: unknown, timeoutMs: number): Error {
  const message = (err as { message?: unknown }).message
  if (typeof message === 'string' && message.includes('Command timed out')) return new errors.TIMEOUT(timeoutMs)
  return new errors.BACKEND_UNAVAILABLE('Redis')
}

/** Resolves when the connection is ready, or after `ms` whatever its state: start-up never waits on Redis for long. */
export async function readyWithin (redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === 'ready') return true
  return await new Promise((resolve) => {
    const timer = setTimeout(() => { redis.off('ready', onReady); resolve(false) }, ms)
    const onReady = (): void => { clearTimeout(timer); resolve(true) }
    redis.once('ready', onReady)
  })
}
