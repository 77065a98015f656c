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

/**
 * Resolves true when the connection is ready, false when its attempt fails (a Redis that is down
 * refuses it at once) or after `ms` whatever its state: nothing waits on a Redis that is not there.
 */
export async function readyWithin (redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === 'ready') return true
  return await new Promise((resolve) => {
    const settle = (ready: boolean): void => {
      clearTimeout(timer)
      redis.off('ready', onReady)
      redis.off('error', onError)
      resolve(ready)
    }
    const onReady = (): void => { settle(true) }
    const onError = (): void => { settle(false) }
    const timer = setTimeout(() => { settle(false) }, ms)
    redis.once('ready', onReady)
    redis.once('error', onError)
  })
}
