import websocket from '@fastify/websocket'
import type { FastifyPluginAsync } from 'fastify'
import type { Config } from '../config.js'
import type { JobRunner } from '../jobs.js'
import { JobConnection } from '../ws/connection.js'
import type { WsConnections } from '../ws/connections.js'

type WsConfig = Pick<Config, 'wsMaxInFlight' | 'wsMaxFrameBytes' | 'wsMaxBufferedBytes' | 'wsPingIntervalMs'>

/**
 * GET /ws: jobs over WebSocket (docs/api.md, "WebSocket"). A frame over wsMaxFrameBytes closes the
 * connection with 1009 (ws does that itself, before buffering the frame). On close the server
 * drains each connection: jobs in flight are answered, then it closes with 1001.
 */
export const wsRoutes: FastifyPluginAsync<{
  runner: JobRunner,
  config: WsConfig,
  connections: WsConnections,
  /** A frame refused before it became a job (OVERLOADED: the connection's cap, or the server closing). */
  refused: (code: 'OVERLOADED') => void
}> = async (app, { runner, config, connections, refused }) => {
  await app.register(websocket, {
    // UTF-8 is checked by the JSON decoder, which answers BAD_INPUT and keeps the connection,
    // where ws would close it (1007) for one bad frame.
    options: { maxPayload: config.wsMaxFrameBytes, skipUTF8Validation: true },
    preClose: async function () {
      await connections.drain()
    },
    errorHandler: (err, socket, request) => {
      request.log.debug({ err }, 'websocket error')
      socket.terminate()
    }
  })

  const heartbeat = setInterval(() => connections.heartbeat(), config.wsPingIntervalMs)
  heartbeat.unref()
  app.addHook('onClose', async () => clearInterval(heartbeat))

  app.get('/ws', { websocket: true, config: { queryToken: true } }, (socket) => {
    const connection = new JobConnection(
      socket, runner, { maxInFlight: config.wsMaxInFlight, maxBufferedBytes: config.wsMaxBufferedBytes }, refused
    )
    connections.add(connection)
    socket.once('close', () => connections.delete(connection))
  })
}
