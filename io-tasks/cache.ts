import { SEED_USERS } from '../src/backends/schema.js'
import { errors } from '../src/errors.js'
import type { CacheState } from '../src/backends/users.js'
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
  run: async ({ id }, { users }) => {
    if (users === undefined || !users.configured.redis) throw new errors.NOT_CONFIGURED('cache', 'REDIS_URL')
    const userId = id ?? 1 + Math.floor(Math.random() * SEED_USERS)
    const { user, cache } = await users.getUser(userId)
    return { id: userId, found: user !== undefined, cache }
  }
} satisfies TaskDefinition<Input, { id: number, found: boolean, cache: CacheState }>
