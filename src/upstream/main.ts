/**
 * `npm run upstream`: the delay service alone, on UPSTREAM_PORT (default 3001) and HOST. Started by
 * the server instead (with an IPC channel), it takes a free port, reports its URL to its parent and
 * exits when the parent goes away, so that it never outlives the server.
 */
import type { AddressInfo } from 'node:net'
import { createDelayService } from './delay-service.js'
import type { UpstreamMessage } from './spawn.js'

const server = createDelayService()
const child = typeof process.send === 'function'
const port = child ? 0 : Number(process.env.UPSTREAM_PORT ?? 3001)
const host = process.env.HOST ?? '127.0.0.1'

server.listen(port, host, () => {
  const { address, port } = server.address() as AddressInfo
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`
  if (child) {
    const message: UpstreamMessage = { type: 'upstream-listening', url }
    process.send?.(message)
  } else {
    process.stdout.write(`delay service listening on ${url}\n`)
  }
})

function stop (): void {
  server.close(() => process.exit(0))
  server.closeAllConnections()
}
if (child) {
  // Started by the server, it stops when the server lets go of it (or dies): a signal to the whole
  // process group (Ctrl-C, systemd's stop, a closed terminal) reaches it too, while the server may
  // still be draining jobs that call it.
  process.once('disconnect', stop)
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => {})
} else {
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
