import { Packr, Unpackr } from 'msgpackr'
import { Client } from 'undici'
import WebSocket from 'ws'
import type { LoadOptions } from './options.js'

export interface Job {
  task: string
  input: Record<string, unknown>
}

/** A job's fate as the client saw it: ok, or the error code the server gave (or the client's own). */
export interface Outcome {
  ok: boolean
  code?: string
  /** The server's own time for it, from its `Server-Timing` total, in ms (HTTP answers that carry one). */
  serverMs?: number
}

/** One connection to the server that can carry several jobs at once. */
export interface Connection {
  send (job: Job): Promise<Outcome>
  /** Waits for the answers in flight, then closes; with `abort`, closes at once and leaves them. */
  close (abort?: boolean): Promise<void>
  /** HTTP: opens the connection with one `GET /health`, its answer read and set aside (LoadOptions.openFirst). */
  connect?: () => Promise<void>
}

const MSGPACK = 'application/msgpack'
const packr = new Packr({ useRecords: false })
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' })

function errorCode (err: unknown): string {
  const refusedWith = (err as { refusedWith?: unknown }).refusedWith
  if (typeof refusedWith === 'string') return refusedWith
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' ? `CLIENT_${code}` : 'CLIENT_ERROR'
}

/** The `total` metric of a Server-Timing header (`total;dur=0.412`), in ms; undefined without one. */
export function serverTotalMs (header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header.join(',') : header
  const dur = value === undefined ? undefined : /(?:^|,)\s*total;dur=([\d.]+)/.exec(value)?.[1]
  return dur === undefined ? undefined : Number(dur)
}

/** HTTP/1.1 on one undici connection, `inFlight` requests pipelined on it. */
export function openHttp (options: LoadOptions): Connection {
  const client = new Client(options.url, {
    pipelining: options.inFlight,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs
  })
  const msgpack = options.encoding === 'msgpack'
  const headers: Record<string, string> = msgpack
    ? { 'content-type': MSGPACK, accept: MSGPACK }
    : { 'content-type': 'application/json' }
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  const path = options.path
  return {
    async send (job) {
      try {
        const res = path === undefined
          ? await client.request({ path: '/jobs', method: 'POST', headers, body: msgpack ? packr.pack(job) : JSON.stringify(job) })
          : await client.request({ path, method: 'GET', headers })
        const body = Buffer.from(await res.body.arrayBuffer())
        const serverMs = serverTotalMs(res.headers['server-timing'])
        if (res.statusCode === 200) return { ok: true, serverMs }
        const decoded = (msgpack ? unpackr.unpack(body) : JSON.parse(body.toString())) as { code?: string }
        return { ok: false, code: decoded.code ?? `HTTP_${res.statusCode}`, serverMs }
      } catch (err) {
        return { ok: false, code: errorCode(err) }
      }
    },
    close: async (abort = false) => { await (abort ? client.destroy() : client.close()) },
    async connect () {
      const res = await client.request({ path: '/health', method: 'GET', headers })
      await res.body.dump()
    }
  }
}

interface Pending {
  resolve: (outcome: Outcome) => void
  sentAt: number
}

/**
 * One WebSocket at a time; answers matched to jobs by id, in whatever order they come. When the
 * server closes it (its process died, it drained), the next job opens another, as a client that
 * stays connected would; its jobs in flight fail with CLIENT_CONNECTION_CLOSED.
 */
export async function openWs (options: LoadOptions): Promise<Connection> {
  let socket = await reconnectWs(options)
  let reopening: Promise<Socket> | undefined
  let closedByUs = false
  return {
    async send (job) {
      if (!socket.open && !closedByUs) {
        reopening ??= reconnectWs(options).finally(() => { reopening = undefined })
        try {
          socket = await reopening
        } catch (err) {
          return { ok: false, code: errorCode(err) }
        }
      }
      return await socket.send(job)
    },
    async close (abort = false) {
      closedByUs = true
      await socket.close(abort)
    }
  }
}

/** An upgrade is answered within this, or given up; a reopening makes this many tries, this far apart. */
export const WS_HANDSHAKE_MS = 10_000
export const WS_REOPEN_TRIES = 10
export const WS_REOPEN_PAUSE_MS = 300

/**
 * A WebSocket, the first or one after the last closed: an upgrade may be refused (503) while the
 * server sheds load, or while the survivors of a dead worker absorb its share, so a few tries.
 */
async function reconnectWs (options: LoadOptions): Promise<Socket> {
  for (let i = 1; ; i++) {
    try {
      return await connectWs(options)
    } catch (err) {
      if (i >= WS_REOPEN_TRIES) throw err
      await new Promise((resolve) => setTimeout(resolve, WS_REOPEN_PAUSE_MS))
    }
  }
}

interface Socket extends Connection {
  readonly open: boolean
}

async function connectWs (options: LoadOptions): Promise<Socket> {
  const url = new URL(options.url.replace(/^http/, 'ws') + '/ws')
  const ws = new WebSocket(url, {
    headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
    maxPayload: 64 * 1024 * 1024,
    // An upgrade no server answers (a worker stopped between accepting it and reading it) fails in bounded time.
    handshakeTimeout: Math.min(options.timeoutMs, WS_HANDSHAKE_MS)
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve)
    ws.on('error', reject)
    // The server answered the upgrade with a status instead (503 while it sheds load): the jobs it
    // would have carried are refused with the server's own code, as they would be over HTTP.
    ws.once('unexpected-response', (req, res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        let code = `HTTP_${res.statusCode ?? 0}`
        try {
          code = (JSON.parse(Buffer.concat(chunks).toString()) as { code?: string }).code ?? code
        } catch {} // not the server's JSON error body: its status says it
        reject(Object.assign(new Error(`upgrade refused: ${code}`), { refusedWith: code }))
        req.destroy()
      })
    })
  })
  const msgpack = options.encoding === 'msgpack'
  const pending = new Map<number, Pending>()
  let nextId = 0
  const settle = (id: number, outcome: Outcome): void => {
    const p = pending.get(id)
    if (p === undefined) return
    pending.delete(id)
    p.resolve(outcome)
  }
  ws.on('message', (data: Buffer, binary) => {
    const answer = (
      binary ? unpackr.unpack(data) : JSON.parse(data.toString())
    ) as { id: number | null, ok: boolean, error?: { code: string } }
    if (answer.id === null) return // the server could not read a frame: none of ours
    settle(answer.id, answer.ok ? { ok: true } : { ok: false, code: answer.error?.code ?? 'UNKNOWN' })
  })
  ws.on('error', () => {}) // followed by 'close', which settles what is pending
  ws.on('close', () => { for (const id of [...pending.keys()]) settle(id, { ok: false, code: 'CLIENT_CONNECTION_CLOSED' }) })
  // One sweep a second instead of a timer per job: thousands of jobs may be in flight.
  const sweep = setInterval(() => {
    const expired = performance.now() - options.timeoutMs
    for (const [id, p] of pending) if (p.sentAt < expired) settle(id, { ok: false, code: 'CLIENT_TIMEOUT' })
  }, 1000)
  sweep.unref()
  return {
    get open () {
      return ws.readyState === WebSocket.OPEN
    },
    send (job) {
      const id = nextId++
      return new Promise<Outcome>((resolve) => {
        if (ws.readyState !== WebSocket.OPEN) return resolve({ ok: false, code: 'CLIENT_CONNECTION_CLOSED' })
        pending.set(id, { resolve, sentAt: performance.now() })
        const frame = { id, task: job.task, input: job.input }
        ws.send(msgpack ? packr.pack(frame) : JSON.stringify(frame))
      })
    },
    async close (abort = false) {
      clearInterval(sweep)
      if (ws.readyState === WebSocket.CLOSED) return
      const closed = new Promise((resolve) => ws.once('close', resolve))
      if (abort) ws.terminate()
      else ws.close()
      await closed
    }
  }
}
