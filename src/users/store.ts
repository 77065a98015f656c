/**
 * The users of the user service, over the narrow backend handles: a read by primary key, the same
 * read through the Redis cache (cache-aside), and an insert of many in one statement. Used by the
 * `/api/users` routes and by the `db` and `cache` tasks alike.
 */
import type { KeyValue, Postgres } from '../backends/handles.js'

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

/**
 * Where a user read came from: Redis (`hit`), PostgreSQL then cached (`miss`), or PostgreSQL with
 * Redis unreachable or unset (`bypass`).
 */
export type CacheState = 'hit' | 'miss' | 'bypass'

interface UserRow { id: string | number, name: string, email: string, created_at: Date }

const toUser = (row: UserRow): User =>
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

/** PostgreSQL only, no cache. */
export async function readUser (postgres: Postgres, id: number): Promise<User | undefined> {
  const [row] = await postgres.query<UserRow>('SELECT id, name, email, created_at FROM users WHERE id = $1', [id])
  return row === undefined ? undefined : toUser(row)
}

/**
 * Cache-aside: Redis first; on a miss PostgreSQL, then cached (for USER_CACHE_TTL_S). Redis failing
 * costs the read its cache (`bypass`), not its answer; a failed write to the cache costs the next
 * read a miss.
 */
export async function readUserCached (
  postgres: Postgres, redis: KeyValue | undefined, id: number
): Promise<{ user: User | undefined, cache: CacheState }> {
  let cache: CacheState = redis === undefined ? 'bypass' : 'miss'
  if (redis !== undefined) {
    try {
      const cached = await redis.get(cacheKey(id))
      const user = cached === null ? undefined : parseCached(cached)
      if (user !== undefined) return { user, cache: 'hit' }
    } catch {
      cache = 'bypass'
    }
  }
  const user = await readUser(postgres, id)
  if (user !== undefined && cache === 'miss') await redis?.set(cacheKey(id), JSON.stringify(user)).catch(() => {})
  return { user, cache }
}

/**
 * Inserts every user or none: one statement is one transaction in PostgreSQL. The new ids in input
 * order. An email that exists already (or twice in the list) is 409 CONFLICT, nothing inserted.
 */
export async function createUsers (postgres: Postgres, users: readonly NewUser[]): Promise<number[]> {
  const rows = await postgres.query<{ id: string, email: string }>(
    `INSERT INTO users (name, email)
       SELECT name, email FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(name, email, n) ORDER BY n
       RETURNING id, email`,
    [users.map((u) => u.name), users.map((u) => u.email)])
  // Emails are unique: map back to input order whatever order RETURNING gave.
  const ids = new Map(rows.map((r) => [r.email, Number(r.id)]))
  return users.map((u) => ids.get(u.email) as number)
}
