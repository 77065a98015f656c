import { performance } from 'node:perf_hooks'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { backendsAvailable, startPostgres, startRedis, type BackendServer } from '../support/backends.js'
import { startDelayService, type DelayServiceProcess } from '../../src/upstream/spawn.js'
import { build, startServer, waitFor } from '../helpers.js'

// Real servers, started here: a throwaway PostgreSQL and Redis, and the delay service. Without
// Debian's postgresql and redis-server packages these tests are skipped, loudly, unless
// REQUIRE_BACKENDS=1 (as .ci/run sets), where they fail.
const available = backendsAvailable()
const runnable = (available.postgres && available.redis) || process.env.REQUIRE_BACKENDS === '1'
if (!runnable) process.stderr.write('test/backends: PostgreSQL or Redis not installed (apt-get install postgresql redis-server); skipping the user-service tests\n')
let postgres: BackendServer
let redis: BackendServer
let upstream: DelayServiceProcess
let sql: pg.Pool

beforeAll(async () => {
  if (!runnable) return
  [postgres, redis, upstream] = await Promise.all([startPostgres(), startRedis(), startDelayService()])
  sql = new pg.Pool({ connectionString: postgres.url, max: 2 })
  sql.on('error', () => {})
}, 60_000)

afterAll(async () => {
  await sql?.end()
  await Promise.all([postgres?.destroy(), redis?.destroy(), upstream?.stop()])
})

const env = (extra: Record<string, string> = {}): Record<string, string> =>
  ({ MODE: 'event-loop', DATABASE_URL: postgres.url, REDIS_URL: redis.url, UPSTREAM_URL: upstream.url, ...extra })

const usersNamed = async (prefix: string): Promise<number> =>
  Number((await sql.query('SELECT count(*) AS n FROM users WHERE email LIKE $1', [`${prefix}%`])).rows[0].n)

describe('without DATABASE_URL and REDIS_URL', () => {
  it('answers 503 NOT_CONFIGURED on every user route and task, and serves the rest', async () => {
    const app = await build({ MODE: 'event-loop' })
    for (const [method, url, payload] of [
      ['GET', '/api/users/1', undefined],
      ['POST', '/api/users', { users: [{ name: 'a', email: 'a@b.co' }] }],
      ['GET', '/api/products', undefined],
      ['POST', '/jobs', { task: 'db', input: { op: 'read' } }],
      ['POST', '/jobs', { task: 'cache', input: {} }]
    ] as const) {
      const res = await app.inject({ method, url, payload })
      expect(res.statusCode, `${method} ${url}`).toBe(503)
      expect(res.json()).toMatchObject({ code: 'NOT_CONFIGURED' })
    }
    expect((await app.inject({ method: 'POST', url: '/jobs', payload: { task: 'fib', input: { n: 5 } } })).statusCode).toBe(200)
  })
})

describe.runIf(runnable)('GET /api/users/:id, cache-aside', () => {
  it('misses, then hits; 404 for a missing user; 400 for an id that is not one', async () => {
    const app = await build(env())
    const first = await app.inject({ url: '/api/users/7' })
    expect(first.statusCode).toBe(200)
    expect(first.headers['x-cache']).toBe('miss')
    expect(first.json()).toMatchObject({ id: 7, name: 'User 7', email: 'user7@example.com' })
    const second = await app.inject({ url: '/api/users/7' })
    expect(second.headers['x-cache']).toBe('hit')
    expect(second.json()).toEqual(first.json())
    const missing = await app.inject({ url: '/api/users/999999' })
    expect(missing.statusCode).toBe(404)
    expect(missing.json()).toMatchObject({ code: 'NOT_FOUND', message: 'No user 999999' })
    for (const id of ['0', '-1', 'abc', '1.5', '9'.repeat(20)]) {
      expect((await app.inject({ url: `/api/users/${id}` })).json(), id).toMatchObject({ statusCode: 400, code: 'BAD_INPUT' })
    }
  })

  it('respects USER_CACHE_TTL_S', async () => {
    const app = await build(env({ USER_CACHE_TTL_S: '1' }))
    expect((await app.inject({ url: '/api/users/11' })).headers['x-cache']).toBe('miss')
    expect((await app.inject({ url: '/api/users/11' })).headers['x-cache']).toBe('hit')
    await new Promise((resolve) => setTimeout(resolve, 1_200))
    expect((await app.inject({ url: '/api/users/11' })).headers['x-cache']).toBe('miss')
  })
})

describe.runIf(runnable)('POST /api/users', () => {
  it('inserts a batch in one transaction and answers the ids in order', async () => {
    const app = await build(env())
    const users = [1, 2, 3].map((i) => ({ name: `Batch ${i}`, email: `batch-ok-${i}@example.com` }))
    const res = await app.inject({ method: 'POST', url: '/api/users', payload: { users } })
    expect(res.statusCode).toBe(201)
    const { ids } = res.json<{ ids: number[] }>()
    expect(ids).toHaveLength(3)
    for (const [i, id] of ids.entries()) {
      expect((await app.inject({ url: `/api/users/${id}` })).json()).toMatchObject({ id, email: users[i]!.email })
    }
  })

  it('is all or nothing: one bad row rolls back every row (409 CONFLICT)', async () => {
    const app = await build(env())
    const users = [
      { name: 'Atomic 1', email: 'atomic-1@example.com' },
      { name: 'Atomic 2', email: 'atomic-2@example.com' },
      { name: 'Duplicate of a seeded user', email: 'user1@example.com' }
    ]
    const res = await app.inject({ method: 'POST', url: '/api/users', payload: { users } })
    expect(res.statusCode).toBe(409)
    expect(res.json()).toMatchObject({ code: 'CONFLICT' })
    expect(await usersNamed('atomic-')).toBe(0)
    // Twice the same address inside one batch: the same.
    const twice = await app.inject({ method: 'POST', url: '/api/users', payload: { users: [users[0], users[0]] } })
    expect(twice.statusCode).toBe(409)
    expect(await usersNamed('atomic-')).toBe(0)
  })

  it.each([
    ['no users', { users: [] }],
    ['a bad email', { users: [{ name: 'x', email: 'not an email' }] }],
    ['an empty name', { users: [{ name: '', email: 'x@example.com' }] }],
    ['an extra field', { users: [{ name: 'x', email: 'x@example.com', admin: true }] }],
    ['a number for a name', { users: [{ name: 5, email: 'x@example.com' }] }],
    ['1,001 users', { users: Array.from({ length: 1001 }, (_v, i) => ({ name: 'x', email: `many${i}@example.com` })) }],
    // These pass the schema; PostgreSQL refuses them, and that is still the client's input.
    ['a NUL character in a name', { users: [{ name: 'a\u0000b', email: 'nul@example.com' }] }],
    ['a NUL character in an email', { users: [{ name: 'n', email: 'n\u0000ul@example.com' }] }]
  ])('refuses %s with 400 BAD_INPUT, inserting nothing', async (_what, payload) => {
    const app = await build(env())
    const res = await app.inject({ method: 'POST', url: '/api/users', payload })
    expect(res.json()).toMatchObject({ statusCode: 400, code: 'BAD_INPUT' })
  })
})

describe.runIf(runnable)('GET /api/products, a gather that survives partial failure', () => {
  it('answers every source when all are up, and what succeeded with a list of what failed when Redis is down', async () => {
    const app = await build(env())
    const all = await app.inject({ url: '/api/products' })
    expect(all.statusCode).toBe(200)
    expect(all.json()).toMatchObject({ views: expect.any(Number), recommendations: { from: 'delay-service' }, failed: [] })
    expect(all.json().products).toHaveLength(20)

    await redis.stop()
    try {
      const partial = await app.inject({ url: '/api/products' })
      expect(partial.statusCode).toBe(200)
      expect(partial.json()).toMatchObject({ views: null, recommendations: { from: 'delay-service' }, failed: [{ source: 'redis', code: 'BACKEND_UNAVAILABLE' }] })
      expect(partial.json().products).toHaveLength(20)
      // A user read bypasses the cache while Redis is down.
      const read = await app.inject({ url: '/api/users/3' })
      expect(read.statusCode).toBe(200)
      expect(read.headers['x-cache']).toBe('bypass')
    } finally {
      await redis.start()
    }
    // Back by itself: ioredis reconnects.
    await waitFor(async () => (await app.inject({ url: '/api/products' })).json().failed.length === 0, 10_000, 100)
  })
})

describe.runIf(runnable)('PostgreSQL down, then back', () => {
  it('fails fast with 503 BACKEND_UNAVAILABLE, serves cached users meanwhile, and recovers by itself', async () => {
    const app = await build(env())
    expect((await app.inject({ url: '/api/users/21' })).statusCode).toBe(200) // now cached
    await postgres.stop()
    try {
      const start = performance.now()
      const down = await app.inject({ url: '/api/users/22' })
      const ms = performance.now() - start
      expect(down.statusCode).toBe(503)
      expect(down.json()).toMatchObject({ code: 'BACKEND_UNAVAILABLE' })
      expect(down.headers['retry-after']).toBe('1')
      // The contract's bound for a backend that is down; not a speed measurement (it takes a few ms).
      expect(ms).toBeLessThan(2_000)
      expect((await app.inject({ method: 'POST', url: '/jobs', payload: { task: 'db', input: { op: 'read', id: 1 } } })).json()).toMatchObject({ code: 'BACKEND_UNAVAILABLE' })
      const cached = await app.inject({ url: '/api/users/21' })
      expect(cached.statusCode).toBe(200)
      expect(cached.headers['x-cache']).toBe('hit')
      const gather = await app.inject({ url: '/api/products' })
      expect(gather.json()).toMatchObject({ products: null, failed: [{ source: 'postgres', code: 'BACKEND_UNAVAILABLE' }] })
    } finally {
      await postgres.start()
    }
    await waitFor(async () => (await app.inject({ url: '/api/users/23' })).statusCode === 200, 10_000, 100)
    expect((await app.inject({ url: '/api/users/24' })).statusCode).toBe(200)
  })
})

describe.runIf(runnable)('the db and cache tasks', () => {
  it('run on the event loop and on pool threads (each thread with its own connection)', async () => {
    for (const mode of [{ MODE: 'event-loop' }, { MODE: 'threads', THREADS: '2' }] as Array<Record<string, string>>) {
      const app = await build(env(mode))
      const post = async (task: string, input: unknown): Promise<any> => (await app.inject({ method: 'POST', url: '/jobs', payload: { task, input } })).json()
      expect(await post('db', { op: 'read', id: 5 })).toMatchObject({ result: { op: 'read', id: 5, found: true } })
      const written = await post('db', { op: 'write' })
      expect(written.result.id).toBeGreaterThan(1000)
      expect(await post('db', { op: 'read', id: written.result.id })).toMatchObject({ result: { found: true } })
      const first = await post('cache', { id: written.result.id })
      expect(first.result).toMatchObject({ found: true, cache: 'miss' })
      expect((await post('cache', { id: written.result.id })).result).toMatchObject({ cache: 'hit' })
      expect(first.ranOn.via).toBe(mode.MODE === 'threads' ? 'pool' : 'event-loop')
    }
  })

  it('read through the cache from a pool thread\'s very first job, Redis being up', async () => {
    // The thread opens its own connections on that job; a command sent while Redis still connects
    // is refused (no offline queue), and the job would read past the cache (`bypass`).
    const app = await build(env({ MODE: 'threads', THREADS: '1' }))
    const post = async (input: unknown): Promise<any> => (await app.inject({ method: 'POST', url: '/jobs', payload: { task: 'cache', input } })).json()
    const first = await post({ id: 9 })
    expect(first.ranOn.via).toBe('pool')
    expect(first.result.cache).not.toBe('bypass')
    expect((await post({ id: 9 })).result).toMatchObject({ found: true, cache: 'hit' })
  })
})

describe.runIf(runnable)('a cluster on a fresh database', () => {
  it('creates the schema once (two workers starting at once) and seeds it', async () => {
    await sql.query('CREATE DATABASE fresh')
    const server = await startServer({ MODE: 'hybrid', PROCESSES: '2', DATABASE_URL: postgres.url.replace(/\/postgres$/, '/fresh'), REDIS_URL: redis.url })
    try {
      const res = await fetch(`${server.url}/api/users/1000`)
      expect(res.status).toBe(200)
      expect(await res.json()).toMatchObject({ id: 1000, email: 'user1000@example.com' })
      const products = await (await fetch(`${server.url}/api/products`)).json() as { products: unknown[] }
      expect(products.products).toHaveLength(20)
    } finally {
      expect(await server.stop()).toBe(0)
    }
  }, 30_000)
})
