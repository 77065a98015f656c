import type { Socket } from 'node:net'
import type { FastifyBodyParser, FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify'
import type { LoopDelay } from '../admission.js'
import { errors } from '../errors.js'
import { bearerCheck } from './auth.js'
import { decodeJson, decodeMsgpack, encodeMsgpack, JSON_TYPE, MSGPACK_TYPE, MSGPACK_TYPES, wantsMsgpack } from './codec.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The client's Accept names MessagePack: answers and errors are encoded so. */
    wantsMsgpack: boolean
    /** The earliest the request can have arrived, as admission read it (LoopDelay.arrivedFrom()). */
    arrivedFrom: number | undefined
    /** When its hooks began (performance.now()); 0 for a request answered before them (a malformed URL). */
    startedAt: number
  }
  interface FastifyContextConfig {
    /** /health: no token needed. */
    open?: boolean
    /** /health and /metrics: answered even while jobs are being shed; an operator needs them most then. */
    neverShed?: boolean
    /** /ws and the dashboard: the token may come as `?token=` (a browser cannot set headers there). */
    queryToken?: boolean
  }
}

export interface RequestHooksOptions {
  /** The event loop's queueing delay, when shedding on it is on. */
  loop: LoopDelay | undefined
  authToken: string | undefined
  /** True once the server is draining: each answer then asks its client to close the connection. */
  closing: () => boolean
  /** Told of each request refused at admission (the dashboard counts them). */
  shed?: (code: string) => void
}

/** When a connection's last request that admission checked was read (LoopDelay.arrivedFrom() says why). */
const lastRead = Symbol('lastRead')
/** When an answer on a connection last refused its request for load (503 OVERLOADED). */
const refusedAt = Symbol('refusedAt')
type ReadSocket = Socket & { [lastRead]?: number, [refusedAt]?: number }

/**
 * A request that began this soon after its connection's refusal was sent came straight back: a
 * client on the same machine or network that sends again as soon as it reads the 503. An open
 * loop's connections carry new jobs, each at its own time: the project's own at 400 connections
 * comes back to a connection every 23 ms at 17,000 jobs/s, every 0.2-0.7 s at the costs that are
 * refused.
 */
export const STRAIGHT_BACK_MS = 5

/**
 * How long to hold a refusal (503 OVERLOADED) before sending it, and marks the connection as
 * refused. A client that comes straight back after a refusal (a closed loop: autocannon, most load
 * tests, a retry loop without a pause) keeps its place in the load whatever it is told: refusing
 * it again at once only spends the loop's CPU and the client's, hundreds of refusals a second
 * for each such connection, on cores the admitted jobs need. Its next refusal goes out `holdMs`
 * after its request began instead, so that it comes back about once per `holdMs`. A first refusal,
 * or one to a client that took its time, goes out at once; a refusal already held as long (the
 * pool's own hold in a retry storm) is not held again.
 */
export function refusalHoldMs (request: FastifyRequest, holdMs: number, now = performance.now()): number {
  const socket = request.raw.socket as ReadSocket
  const elapsed = now - request.startedAt
  const previous = socket[refusedAt]
  // Within the bound either way: a held refusal's timer may fire up to a millisecond early.
  const straightBack = previous !== undefined && Math.abs(now - elapsed - previous) <= STRAIGHT_BACK_MS
  const hold = straightBack ? Math.max(0, holdMs - elapsed) : 0
  socket[refusedAt] = now + hold // when it will be sent
  return hold
}

// Fastify's types say a serializer returns a string; at run time a Buffer goes out as is.
const msgpackSerializer = encodeMsgpack as unknown as (payload: unknown) => string

/**
 * Everything the server does to every request, in one onRequest and one onSend hook on the root
 * instance, and admission as the own onRequest hook of each route that may be shed (each hook
 * Fastify runs costs every request; callback style, since a promise each would cost more):
 *
 * - bodies in JSON or MessagePack (any other type is refused with 415), answers in what Accept asks;
 * - the bearer token, when AUTH_TOKEN is set;
 * - admission on the event loop's queueing delay (src/admission.ts), before the body is read, on
 *   every route but those marked `neverShed`, each request's wait bounded by when its
 *   connection's previous request was read;
 * - a Server-Timing header on every answer, and `connection: close` while draining or when an upgrade is refused.
 *
 * The root's hooks run for not-found and error answers too; admission does not (a not-found answer
 * costs less than the check).
 */
export function installRequestHooks (app: FastifyInstance, options: RequestHooksOptions): void {
  app.removeAllContentTypeParsers()
  const parser = (decode: (body: Buffer) => unknown): FastifyBodyParser<Buffer> => (_req, body, done) => {
    try {
      done(null, decode(body))
    } catch (err) {
      done(err as Error, undefined)
    }
  }
  app.addContentTypeParser(JSON_TYPE, { parseAs: 'buffer' }, parser(decodeJson))
  app.addContentTypeParser([...MSGPACK_TYPES], { parseAs: 'buffer' }, parser(decodeMsgpack))
  app.decorateRequest('wantsMsgpack', false)
  app.decorateRequest('arrivedFrom', undefined)
  app.decorateRequest('startedAt', 0)

  const { loop, closing } = options
  const authorized = options.authToken === undefined ? undefined : bearerCheck(options.authToken)
  app.addHook('onRequest', (request, reply, done) => {
    request.startedAt = performance.now()
    if (wantsMsgpack(request.headers.accept)) {
      request.wantsMsgpack = true
      reply.serializer(msgpackSerializer)
    }
    // The route's config only when a token is set: Fastify builds request.routeOptions afresh on
    // every read (a dozen fields, about a microsecond).
    if (authorized !== undefined && request.routeOptions.config.open !== true && !authorized(request)) {
      reply.header('www-authenticate', 'Bearer')
      done(new errors.UNAUTHORIZED())
      return
    }
    done()
  })

  // Admission, on the routes that may be shed only: /health and /metrics pay nothing for it, and
  // the routes that do pay no read of their config. A route's own hooks run after the root's, so
  // a client without the token is told so rather than to come back later.
  if (loop !== undefined) {
    const admit: onRequestHookHandler = (request, _reply, done) => {
      const now = request.startedAt // read a microsecond ago, by the root's hook
      const socket = request.raw.socket as ReadSocket
      const arrivedFrom = loop.arrivedFrom(socket[lastRead], now)
      socket[lastRead] = now
      request.arrivedFrom = arrivedFrom
      const refusal = loop.refusal(now, arrivedFrom)
      if (refusal === undefined) {
        done()
        return
      }
      options.shed?.('OVERLOADED')
      done(refusal)
    }
    app.addHook('onRoute', (route) => {
      if (route.config?.neverShed === true) return
      route.onRequest = route.onRequest === undefined ? admit : [admit, ...[route.onRequest].flat()]
    })
  }

  app.addHook('onSend', (request, reply, payload, done) => {
    // Here rather than in onRequest: Fastify resets the content type before an error handler runs.
    if (request.wantsMsgpack) reply.header('content-type', MSGPACK_TYPE)
    if (!reply.hasHeader('server-timing')) {
      const ms = request.startedAt === 0 ? 0 : performance.now() - request.startedAt
      reply.header('server-timing', `total;dur=${ms.toFixed(3)}`)
    }
    // Node closes idle keep-alive connections when the server closes, but not those still busy
    // then: tell each of those, with its last answer, to close, so that the drain ends when the
    // jobs in flight do rather than when keep-alive times out.
    if (closing()) reply.header('connection', 'close')
    // An upgrade answered here was refused (shed, unauthorised, not found): an accepted one is
    // answered 101 by ws and never gets a reply. @fastify/websocket writes that reply on the raw
    // socket outside the HTTP server's bookkeeping, which therefore never closes it, and a drain
    // waits on it to its deadline: close it once the answer is out.
    if (request.raw.headers.upgrade !== undefined) {
      reply.header('connection', 'close')
      const socket = request.raw.socket
      reply.raw.once('finish', () => socket.end(() => socket.destroy()))
    }
    done(null, payload)
  })
}
