import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'

const digest = (value: string): Buffer => createHash('sha256').update(value).digest()

/**
 * With AUTH_TOKEN set, every route but /health needs `Authorization: Bearer <token>`; the routes
 * marked `queryToken` (/ws, the dashboard) also take `?token=`, since browsers cannot set headers
 * on a WebSocket, an EventSource or an image. Checked in onRequest (see hooks.ts), so a refused
 * client costs no body parsing, no job, and no WebSocket handshake. Both
 * sides are hashed first: comparing equal-length digests in constant time says nothing about the
 * token's length.
 */
export function bearerCheck (token: string): (request: FastifyRequest) => boolean {
  const expected = digest(token)
  const presented = (request: FastifyRequest): string | null | undefined => {
    const header = request.headers.authorization
    if (header !== undefined) return /^Bearer (.+)$/i.exec(header)?.[1]
    if (request.routeOptions.config.queryToken === true) return new URL(request.url, 'http://ws.invalid').searchParams.get('token')
    return undefined
  }
  return (request) => {
    const given = presented(request)
    return typeof given === 'string' && timingSafeEqual(digest(given), expected)
  }
}
