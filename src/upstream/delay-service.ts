import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'

/**
 * The project's own delay service, like httpbin's /delay and /bytes, on bare node:http so that it
 * costs as little as possible and never becomes what a benchmark measures.
 *
 *   GET /delay/:ms?bytes=N&status=S   waits ms (<= 60,000), then answers status S (default 200) with N bytes
 *   GET /bytes/:n                     answers n bytes at once (<= 16 MiB)
 *   GET /health                       {"status":"ok"}
 */
export const MAX_DELAY_MS = 60_000
export const MAX_BYTES = 16 * 1024 * 1024

const filler = Buffer.alloc(MAX_BYTES, 'x')

function answer (res: ServerResponse, status: number, bytes: number): void {
  res.writeHead(status, { 'content-type': 'application/octet-stream', 'content-length': bytes })
  res.end(filler.subarray(0, bytes))
}

function refuse (res: ServerResponse, status: number, message: string): void {
  const body = JSON.stringify({ statusCode: status, message })
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

function bounded (raw: string | null, min: number, max: number, fallback: number): number | undefined {
  if (raw === null) return fallback
  if (!/^\d{1,9}$/.test(raw)) return undefined
  const n = Number(raw)
  return n >= min && n <= max ? n : undefined
}

function handle (req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://delay.invalid')
  const [, route, arg = null] = url.pathname.split('/')
  if (req.method !== 'GET') return refuse(res, 405, 'only GET')
  if (route === 'health' && arg === null) return refuse(res, 200, 'ok')
  if (route === 'bytes') {
    const bytes = bounded(arg, 0, MAX_BYTES, -1)
    if (bytes === undefined || bytes < 0) return refuse(res, 400, `/bytes/:n takes 0 to ${MAX_BYTES}`)
    return answer(res, 200, bytes)
  }
  if (route === 'delay') {
    const ms = bounded(arg, 0, MAX_DELAY_MS, -1)
    const bytes = bounded(url.searchParams.get('bytes'), 0, MAX_BYTES, 0)
    const status = bounded(url.searchParams.get('status'), 200, 599, 200)
    if (ms === undefined || ms < 0 || bytes === undefined || status === undefined) {
      return refuse(res, 400, `/delay/:ms takes 0 to ${MAX_DELAY_MS} ms, ?bytes= 0 to ${MAX_BYTES}, ?status= 200 to 599`)
    }
    const timer = setTimeout(answer, ms, res, status, bytes)
    res.once('close', () => clearTimeout(timer))
    return
  }
  refuse(res, 404, 'routes: /delay/:ms, /bytes/:n, /health')
}

export function createDelayService (): Server {
  const server = createServer({ keepAliveTimeout: 30_000 }, handle)
  // Thousands of clients may wait at once; none of them is slow on purpose.
  server.headersTimeout = 10_000
  server.requestTimeout = MAX_DELAY_MS + 10_000
  return server
}
