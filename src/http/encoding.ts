import type { FastifyInstance, FastifyBodyParser } from 'fastify'

type ContentTypeParser = FastifyBodyParser<Buffer>
import { decodeJson, decodeMsgpack, encodeMsgpack, JSON_TYPE, MSGPACK_TYPE, MSGPACK_TYPES, wantsMsgpack } from './codec.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The client's Accept names MessagePack: answers and errors are encoded so. */
    wantsMsgpack: boolean
  }
}

/**
 * Bodies in JSON or MessagePack, answers in what Accept asks for, and a Server-Timing header on
 * every answer. Installed on the root instance so that the not-found and error answers get it too.
 * Every other content type is refused by Fastify with 415.
 */
export function installEncoding (app: FastifyInstance): void {
  app.removeAllContentTypeParsers()
  const parser = (decode: (body: Buffer) => unknown): ContentTypeParser => (_req, body, done) => {
    try {
      done(null, decode(body as Buffer))
    } catch (err) {
      done(err as Error, undefined)
    }
  }
  app.addContentTypeParser(JSON_TYPE, { parseAs: 'buffer' }, parser(decodeJson))
  app.addContentTypeParser([...MSGPACK_TYPES], { parseAs: 'buffer' }, parser(decodeMsgpack))

  app.decorateRequest('wantsMsgpack', false)
  // Callback-style hooks: on every request, a promise each would be cost for nothing.
  app.addHook('onRequest', (request, reply, done) => {
    request.wantsMsgpack = wantsMsgpack(request.headers.accept)
    // Fastify's types say a serializer returns a string; at run time a Buffer goes out as is.
    if (request.wantsMsgpack) reply.serializer(encodeMsgpack as unknown as (payload: unknown) => string)
    done()
  })
  // Here rather than in onRequest: Fastify clears the content type before an error handler runs.
  app.addHook('preSerialization', (request, reply, payload, done) => {
    if (request.wantsMsgpack) reply.type(MSGPACK_TYPE)
    done(null, payload)
  })
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (!reply.hasHeader('server-timing')) reply.header('server-timing', `total;dur=${reply.elapsedTime.toFixed(3)}`)
    done(null, payload)
  })
}
