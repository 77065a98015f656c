import { Writable } from 'node:stream'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import { pino, type Logger } from 'pino'
import { describe, expect, it, vi } from 'vitest'
import { RequestLogger, requestLoggers } from '../src/log.js'

/** A pino logger at `level` whose lines land in `lines`, parsed. */
function memoryLogger (level: string): { logger: Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
      done()
    }
  })
  return { logger: pino({ level }, stream), lines }
}

describe('RequestLogger', () => {
  it('makes no child for a line at a level that is off, and one, once, for lines that are written', () => {
    const { logger, lines } = memoryLogger('info')
    const child = vi.spyOn(logger, 'child')
    const log = new RequestLogger(logger, { reqId: 'req-7' }, {})
    log.debug({ a: 1 }, 'not written')
    log.trace('not written either')
    expect(child).not.toHaveBeenCalled()
    expect(log.level).toBe('info')
    log.info({ a: 2 }, 'first')
    log.error('second %s', 'line')
    expect(child).toHaveBeenCalledTimes(1)
    expect(lines).toMatchObject([
      { level: 30, reqId: 'req-7', a: 2, msg: 'first' },
      { level: 50, reqId: 'req-7', msg: 'second line' }
    ])
  })

  it('sets its own level on its child, not on the parent', () => {
    const { logger, lines } = memoryLogger('info')
    const log = new RequestLogger(logger, { reqId: 'req-8' }, {})
    log.level = 'debug'
    log.debug('now written')
    expect(logger.level).toBe('info')
    expect(lines).toMatchObject([{ level: 20, reqId: 'req-8', msg: 'now written' }])
  })

  it('gives its children the request id', () => {
    const { logger, lines } = memoryLogger('info')
    new RequestLogger(logger, { reqId: 'req-9' }, {}).child({ part: 'ws' }).warn('from a child')
    expect(lines).toMatchObject([{ level: 40, reqId: 'req-9', part: 'ws', msg: 'from a child' }])
  })
})

/** Fastify as src/app.ts makes it: no logger of its own, requestLoggers() over `logger`, app.log set to it. */
function fastifyOver (logger: Logger): FastifyInstance {
  const app = Fastify({
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: requestLoggers(logger)
  })
  app.log = logger
  return app
}

/** The 'finish' and 'error' listeners on a response as its route handler runs, on `app`. */
async function responseListeners (app: FastifyInstance): Promise<{ finish: number, error: number }> {
  app.get('/listeners', async (_request, reply) => ({ finish: reply.raw.listenerCount('finish'), error: reply.raw.listenerCount('error') }))
  try {
    return (await app.inject('/listeners')).json()
  } finally {
    await app.close()
  }
}

describe('requestLoggers as the childLoggerFactory of a Fastify without a logger', () => {
  it('logs a request\'s lines with its request id, and makes no child for a request that writes none', async () => {
    const { logger, lines } = memoryLogger('info')
    const child = vi.spyOn(logger, 'child')
    const app = fastifyOver(logger)
    app.get('/quiet', async (request) => {
      request.log.debug('off at info')
      return { ok: true }
    })
    app.get('/loud', async (request) => {
      request.log.info({ n: 1 }, 'on at info')
      return { ok: true }
    })
    try {
      expect((await app.inject('/quiet')).statusCode).toBe(200)
      expect(child).not.toHaveBeenCalled()
      expect((await app.inject('/loud')).statusCode).toBe(200)
      expect(child).toHaveBeenCalledTimes(1)
      app.log.warn('from the instance')
      expect(lines).toMatchObject([
        { level: 30, n: 1, msg: 'on at info', reqId: expect.stringMatching(/^req-/) },
        { level: 40, msg: 'from the instance' }
      ])
    } finally {
      await app.close()
    }
  })

  it('adds no listener to a response, where Fastify given a logger adds one for its end and one for its errors', async () => {
    const plain = await responseListeners(Fastify())
    const withLogger = await responseListeners(Fastify({ logger: { level: 'silent' } }))
    expect(withLogger).toEqual({ finish: plain.finish + 1, error: plain.error + 1 })
    expect(await responseListeners(fastifyOver(memoryLogger('info').logger))).toEqual(plain)
  })
})
