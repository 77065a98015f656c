import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { errors } from '../errors.js'

const OPEN_ROUTES = new Set(['/health'])
const digest = (value: string): Buffer => createHash('sha256').update(value).digest()

/**
 * With AUTH_TOKEN set, every route but /health needs `Authorization: Bearer <token>`; /ws also
 * takes `?token=`, since browsers cannot set headers on a WebSocket. Checked in onRequest, so a
 * refused client costs no body parsing, no job, and no WebSocket handshake. Both sides are hashed
 * first: comparing equal-length digests in constant time says nothing about the token's length.
 */
export function installAuth (app: FastifyInstance, token: string): void {
  const expected = digest(token)
  const matches = (given: string | null | undefined): boolean =>
    typeof given === 'string' && timingSafeEqual(digest(given), expected)

  const presented = (request: FastifyRequest): string | null | undefined => {
    const header = request.headers.authorization
    if (header !== undefined) return /^Bearer (.+)$/i.exec(header)?.[1]
    if (request.routeOptions.url === '/ws') return new URL(request.url, 'http://ws.invalid').searchParams.get('token')
    return undefined
  }

  app.addHook('onRequest', async (request, reply) => {
    if (OPEN_ROUTES.has(request.routeOptions.url ?? '')) return
    if (matches(presented(request))) return
    reply.header('www-authenticate', 'Bearer')
    throw new errors.UNAUTHORIZED()
  })
}
