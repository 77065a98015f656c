import type { FastifyPluginAsync } from 'fastify'
import { codedError } from '../errors.js'
import { need, type BackendHandles } from '../backends/handles.js'
import { createUsers, readUserCached, type NewUser } from '../users/store.js'

/** Users per POST /api/users: inserted in one statement, so at most this many rows. */
export const MAX_NEW_USERS = 1000
/** 1,000 users of ~400 bytes of JSON each fit. */
export const USERS_BODY_LIMIT = 512 * 1024

const idParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[1-9][0-9]{0,14}$' } },
  required: ['id'],
  additionalProperties: false
} as const

const newUsersBody = {
  type: 'object',
  properties: {
    users: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_NEW_USERS,
      items: {
        type: 'object',
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 100 },
          // A plausible address, not RFC 5322: something@something.something, no spaces.
          email: { type: 'string', minLength: 3, maxLength: 254, pattern: '^[^\\s@]+@[^\\s@]+\\.[^\\s@]+$' }
        },
        required: ['name', 'email'],
        additionalProperties: false
      }
    }
  },
  required: ['users'],
  additionalProperties: false
} as const

/**
 * The users of the user service (docs/api.md, "The user service"). Without DATABASE_URL every
 * route answers 503 NOT_CONFIGURED; without REDIS_URL reads go straight to PostgreSQL
 * (`x-cache: bypass`).
 */
export const userRoutes: FastifyPluginAsync<{ backends: BackendHandles }> = async (app, { backends }) => {
  app.get<{ Params: { id: string } }>('/api/users/:id', { schema: { params: idParams } }, async (request, reply) => {
    const id = Number(request.params.id)
    const postgres = need(backends.postgres, 'reading a user', 'DATABASE_URL')
    const { user, cache } = await readUserCached(postgres, backends.redis, id)
    reply.header('x-cache', cache)
    if (user === undefined) throw codedError('NOT_FOUND', `No user ${id}`)
    return user
  })

  const createOptions = { bodyLimit: USERS_BODY_LIMIT, schema: { body: newUsersBody } }
  app.post<{ Body: { users: NewUser[] } }>('/api/users', createOptions, async (request, reply) => {
    const ids = await createUsers(need(backends.postgres, 'creating users', 'DATABASE_URL'), request.body.users)
    return reply.code(201).send({ ids })
  })
}
