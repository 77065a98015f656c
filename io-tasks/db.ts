import { randomUUID } from 'node:crypto'
import { SEED_USERS } from '../src/backends/schema.js'
import { need } from '../src/backends/handles.js'
import { createUsers, readUser } from '../src/users/store.js'
import type { TaskDefinition } from '../src/tasks/types.js'

interface Input { op: 'read' | 'write', id?: number }

export default {
  name: 'db',
  kind: 'io',
  usesBackends: true,
  description: 'PostgreSQL, no cache: `read` one user by primary key (`id`, or a random seeded one), or `write` one new user. ' +
    'Needs DATABASE_URL (else 503 NOT_CONFIGURED).',
  schema: {
    type: 'object',
    properties: {
      op: { enum: ['read', 'write'] },
      id: { type: 'integer', minimum: 1, maximum: 2 ** 31 - 1 }
    },
    required: ['op'],
    additionalProperties: false
  },
  run: async ({ op, id }, context) => {
    const postgres = need(context.postgres, 'db', 'DATABASE_URL')
    if (op === 'write') {
      const tag = randomUUID()
      const [created] = await createUsers(postgres, [{ name: `Job user ${tag.slice(0, 8)}`, email: `${tag}@jobs.example.com` }])
      return { op, id: created as number }
    }
    const userId = id ?? 1 + Math.floor(Math.random() * SEED_USERS)
    return { op, id: userId, found: await readUser(postgres, userId) !== undefined }
  }
} satisfies TaskDefinition<Input, { op: string, id: number, found?: boolean }>
