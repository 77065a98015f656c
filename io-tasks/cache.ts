import { SEED_USERS } from '../src/backends/schema.js'
import { need } from '../src/backends/handles.js'
import { readUserCached, type CacheState } from '../src/users/store.js'
import type { TaskDefinition } from '../src/tasks/types.js'

interface Input { id?: number }

export default {
  name: 'cache',
  kind: 'io',
  usesBackends: true,
  description: 'A user read through the Redis cache (cache-aside, as GET /api/users/:id): Redis first, PostgreSQL on a miss, ' +
    'then cached. `id`, or a random seeded one. Needs DATABASE_URL and REDIS_URL (else 503 NOT_CONFIGURED).',
  schema: {
    type: 'object',
    properties: { id: { type: 'integer', minimum: 1, maximum: 2 ** 31 - 1 } },
    additionalProperties: false
  },
  run: async ({ id }, context) => {
    const redis = need(context.redis, 'cache', 'REDIS_URL')
    const postgres = need(context.postgres, 'cache', 'DATABASE_URL')
    const userId = id ?? 1 + Math.floor(Math.random() * SEED_USERS)
    const { user, cache } = await readUserCached(postgres, redis, userId)
    return { id: userId, found: user !== undefined, cache }
  }
} satisfies TaskDefinition<Input, { id: number, found: boolean, cache: CacheState }>
