/**
 * The hostile-input table: every kind of bad request the contract promises to answer with a coded
 * 4xx, sent over HTTP JSON, HTTP MessagePack and WebSocket (JSON and MessagePack frames). Shared by
 * the parametrised test and by `npm run chaos`, so the run reports exactly what the test checks.
 */
import { request as httpRequest } from 'node:http'
import { once } from 'node:events'
import { Packr, Unpackr } from 'msgpackr'
import WebSocket from 'ws'

export const TRANSPORTS = ['http-json', 'http-msgpack', 'ws-json', 'ws-msgpack'] as const
export type Transport = (typeof TRANSPORTS)[number]

export interface BadInput {
  name: string
  /** A job (POST /jobs, or a WebSocket frame with an id added) or a batch, as a value to encode. */
  value?: unknown
  /** Or bytes sent as they are, per encoding; a transport whose encoding is missing skips the case. */
  bytes?: { json?: Buffer | string, msgpack?: Buffer }
  route?: '/jobs' | '/jobs/batch'
  method?: 'POST' | 'GET'
  /** HTTP only: sent instead of the transport's content type. */
  contentType?: string | null
  /** The transports that apply (all four unless given). */
  only?: readonly Transport[]
  status: number
  code: string
  /** Batches: the codes of the items, `ok` for a job that ran. */
  items?: readonly string[]
}

export interface Outcome {
  status: number
  code: string
  items?: string[]
}

const HTTP: readonly Transport[] = ['http-json', 'http-msgpack']
const MSGPACK_ONLY: readonly Transport[] = ['http-msgpack', 'ws-msgpack']

// Keys kept as data, and maps packed as maps, so that hostile keys reach the server as sent.
const packr = new Packr({ useRecords: false, structuredClone: false })
const unpackr = new Unpackr({ mapsAsObjects: true, useRecords: false })

function nested (depth: number): unknown {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = { a: value }
  return value
}

const fib = (input: unknown): unknown => ({ task: 'fib', input })
const packedFib = packr.pack({ task: 'fib', input: { n: 5 } })

export const BAD_INPUTS: readonly BadInput[] = [
  { name: 'empty body', bytes: { json: '', msgpack: Buffer.alloc(0) }, status: 400, code: 'BAD_INPUT' },
  { name: 'truncated body', bytes: { json: '{"task":"fib","inp', msgpack: packedFib.subarray(0, packedFib.length - 3) }, status: 400, code: 'BAD_INPUT' },
  { name: 'trailing bytes', bytes: { json: '{"task":"fib","input":{"n":5}}}', msgpack: Buffer.concat([packedFib, Buffer.from([0xc1])]) }, status: 400, code: 'BAD_INPUT' },
  { name: 'invalid UTF-8', bytes: { json: Buffer.from([0x7b, 0x22, 0x74, 0x61, 0x73, 0x6b, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }, status: 400, code: 'BAD_INPUT' },
  { name: 'not an object (array)', value: [1, 2, 3], status: 400, code: 'BAD_INPUT' },
  { name: 'not an object (string)', value: 'fib', status: 400, code: 'BAD_INPUT' },
  { name: 'null body', value: null, status: 400, code: 'BAD_INPUT' },
  { name: 'nesting 40 deep', value: fib(nested(40)), status: 400, code: 'BAD_INPUT' },
  { name: 'nesting 30,000 deep', bytes: { json: '['.repeat(30_000) + ']'.repeat(30_000), msgpack: Buffer.alloc(30_000, 0x91) }, status: 400, code: 'BAD_INPUT' },
  { name: '__proto__ key', bytes: { json: '{"task":"fib","input":{"__proto__":{"n":5}}}', msgpack: packr.pack(new Map<string, unknown>([['task', 'fib'], ['input', new Map([['__proto__', { n: 5 }]])]])) }, status: 400, code: 'BAD_INPUT' },
  { name: 'constructor key', value: fib({ n: 5, constructor: { prototype: {} } }), status: 400, code: 'BAD_INPUT' },
  { name: 'number over its maximum', value: fib({ n: 1000 }), status: 400, code: 'BAD_INPUT' },
  { name: 'negative number', value: fib({ n: -1 }), status: 400, code: 'BAD_INPUT' },
  { name: 'fraction for an integer', value: fib({ n: 1.5 }), status: 400, code: 'BAD_INPUT' },
  { name: 'huge number', bytes: { json: '{"task":"fib","input":{"n":1e400}}', msgpack: packr.pack({ task: 'fib', input: { n: 1e300 } }) }, status: 400, code: 'BAD_INPUT' },
  { name: 'Infinity and NaN', bytes: { msgpack: packr.pack({ task: 'spin', input: { ms: Number.NaN } }) }, only: MSGPACK_ONLY, status: 400, code: 'BAD_INPUT' },
  { name: 'string for a number', value: fib({ n: '30' }), status: 400, code: 'BAD_INPUT' },
  { name: 'boolean for a number', value: fib({ n: true }), status: 400, code: 'BAD_INPUT' },
  { name: 'number for the task name', value: { task: 42, input: {} }, status: 400, code: 'BAD_INPUT' },
  { name: 'array for the input', value: { task: 'fib', input: [30] }, status: 400, code: 'BAD_INPUT' },
  { name: 'string for the input', value: { task: 'fib', input: 'n=30' }, status: 400, code: 'BAD_INPUT' },
  { name: 'missing required input', value: fib({}), status: 400, code: 'BAD_INPUT' },
  { name: 'extra field in the job', value: { task: 'fib', input: { n: 5 }, priority: 'high' }, status: 400, code: 'BAD_INPUT' },
  { name: 'extra field in the input', value: fib({ n: 5, m: 2 }), status: 400, code: 'BAD_INPUT' },
  { name: 'empty task name', value: { task: '', input: {} }, status: 400, code: 'BAD_INPUT' },
  { name: 'task name of 10,000 characters', value: { task: 'x'.repeat(10_000), input: {} }, status: 400, code: 'BAD_INPUT' },
  { name: 'unknown task', value: { task: 'nope', input: {} }, status: 404, code: 'UNKNOWN_TASK' },
  { name: 'path-like task', value: { task: '../../src/server', input: {} }, status: 404, code: 'UNKNOWN_TASK' },
  { name: 'task named __proto__', value: { task: '__proto__', input: {} }, status: 404, code: 'UNKNOWN_TASK' },
  { name: 'task named toString', value: { task: 'toString', input: {} }, status: 404, code: 'UNKNOWN_TASK' },
  { name: 'fault task when FAULT_TASKS is off', value: { task: 'fault', input: { mode: 'exit' } }, status: 404, code: 'UNKNOWN_TASK' },
  { name: 'MessagePack timestamp', bytes: { msgpack: packr.pack({ task: 'fib', input: { n: new Date(0) } }) }, only: MSGPACK_ONLY, status: 400, code: 'BAD_INPUT' },
  { name: 'MessagePack binary', bytes: { msgpack: packr.pack({ task: 'fib', input: { n: Buffer.from([1]) } }) }, only: MSGPACK_ONLY, status: 400, code: 'BAD_INPUT' },
  { name: 'MessagePack unknown extension', bytes: { msgpack: Buffer.from([0x81, 0xa4, 0x74, 0x61, 0x73, 0x6b, 0xd4, 0x42, 0x00]) }, only: MSGPACK_ONLY, status: 400, code: 'BAD_INPUT' },
  { name: 'MessagePack reserved byte', bytes: { msgpack: Buffer.from([0xc1]) }, only: MSGPACK_ONLY, status: 400, code: 'BAD_INPUT' },
  { name: 'body of 100 KiB (/jobs takes 64 KiB)', value: { task: 'fib', input: { n: 5, pad: 'x'.repeat(100 * 1024) } }, only: HTTP, status: 413, code: 'TOO_LARGE' },
  { name: 'body of 2 MiB on /jobs/batch', route: '/jobs/batch', value: { jobs: [{ task: 'fib', input: { pad: 'x'.repeat(2 * 1024 * 1024) } }] }, only: HTTP, status: 413, code: 'TOO_LARGE' },
  { name: 'text/plain', contentType: 'text/plain', value: fib({ n: 5 }), only: ['http-json'], status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'application/xml', contentType: 'application/xml', bytes: { json: '<job task="fib"/>' }, only: ['http-json'], status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'multipart/form-data', contentType: 'multipart/form-data; boundary=x', bytes: { json: '--x\r\n\r\nfib\r\n--x--' }, only: ['http-json'], status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'no content type', contentType: null, value: fib({ n: 5 }), only: ['http-json'], status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'GET on /jobs', method: 'GET', only: ['http-json'], status: 404, code: 'NOT_FOUND' },
  { name: 'batch of 1,001 jobs', route: '/jobs/batch', value: { jobs: Array.from({ length: 1001 }, () => fib({ n: 1 })) }, only: HTTP, status: 400, code: 'BAD_INPUT' },
  { name: 'empty batch', route: '/jobs/batch', value: { jobs: [] }, only: HTTP, status: 400, code: 'BAD_INPUT' },
  { name: 'batch that is not a list', route: '/jobs/batch', value: { jobs: { task: 'fib' } }, only: HTTP, status: 400, code: 'BAD_INPUT' },
  {
    name: 'bad items inside a batch',
    route: '/jobs/batch',
    value: { jobs: [fib({ n: 5 }), { task: 'nope' }, 42, fib({ n: 'x' }), { task: 'fib', input: { n: 5 }, x: 1 }, null, fib({ n: 6 })] },
    only: HTTP,
    status: 200,
    code: 'OK',
    items: ['ok', 'UNKNOWN_TASK', 'BAD_INPUT', 'BAD_INPUT', 'BAD_INPUT', 'BAD_INPUT', 'ok']
  },
  { name: 'frame id of 1,000 characters', value: { id: 'i'.repeat(1000), task: 'fib', input: { n: 5 } }, only: ['ws-json', 'ws-msgpack'], status: 400, code: 'BAD_INPUT' },
  { name: 'JSON with duplicate keys (the last wins)', bytes: { json: '{"task":"fib","task":"nope","input":{}}' }, only: ['http-json'], status: 404, code: 'UNKNOWN_TASK' }
]

/** Every (case, transport) pair that applies. */
export function badInputPairs (): Array<[BadInput, Transport]> {
  return BAD_INPUTS.flatMap((c) => TRANSPORTS
    .filter((t) => c.only === undefined || c.only.includes(t))
    .filter((t) => c.value !== undefined || c.method === 'GET' || c.bytes?.[t.endsWith('json') ? 'json' : 'msgpack'] !== undefined)
    .map((t): [BadInput, Transport] => [c, t]))
}

function encode (value: unknown, msgpack: boolean): Buffer {
  return msgpack ? packr.pack(value) : Buffer.from(JSON.stringify(value))
}

function body (c: BadInput, msgpack: boolean): Buffer {
  const raw = c.bytes?.[msgpack ? 'msgpack' : 'json']
  if (raw !== undefined) return Buffer.from(raw)
  return encode(c.value, msgpack)
}

type Item = { ok: true } | { ok: false, error: { code: string } }

/** Bodies from this size on are sent only after the server has had a moment to refuse them by their headers. */
const LARGE_BODY = 64 * 1024

/**
 * One request. A server may refuse a body by its Content-Length alone (413) and close the
 * connection without reading it, as HTTP allows; a client that is still writing then sees a broken
 * pipe rather than the answer. So a large body goes out only after the headers have been out for
 * a moment with no answer, the way a client using `Expect: 100-continue` would wait.
 */
async function exchange (
  target: string, method: string, headers: Record<string, string>, payload: Buffer | undefined
): Promise<{ status: number, type: string, bytes: Buffer }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest(target, { method, headers: payload === undefined ? headers : { ...headers, 'content-length': String(payload.length) }, timeout: 10_000 })
    let answered = false
    req.once('response', (res) => {
      answered = true
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.once('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), bytes: Buffer.concat(chunks) }))
      res.once('error', reject)
    })
    req.once('timeout', () => req.destroy(new Error('no answer in 10 s')))
    req.on('error', (err) => { if (!answered) reject(err) })
    if (payload === undefined || payload.length < LARGE_BODY) {
      req.end(payload)
      return
    }
    req.flushHeaders()
    setTimeout(() => { if (!answered) req.end(payload) }, 100)
  })
}

async function sendHttp (
  url: string, c: BadInput, msgpack: boolean, headers: Record<string, string>
): Promise<Outcome> {
  const type = msgpack ? 'application/msgpack' : 'application/json'
  const sent: Record<string, string> = { ...headers, accept: type }
  const payload = c.method === 'GET' ? undefined : body(c, msgpack)
  if (payload !== undefined && c.contentType !== null) sent['content-type'] = c.contentType ?? type
  const res = await exchange(`${url}${c.route ?? '/jobs'}`, c.method ?? 'POST', sent, payload)
  const answer = res.type.includes('msgpack') ? unpackr.unpack(res.bytes) : JSON.parse(res.bytes.toString())
  if (res.status === 200 && Array.isArray(answer.results)) {
    return { status: 200, code: 'OK', items: (answer.results as Item[]).map((r) => r.ok ? 'ok' : r.error.code) }
  }
  return { status: res.status, code: res.status === 200 ? 'OK' : String(answer.code) }
}

/** Opens a WebSocket for jobs; resolves when open. */
export async function openJobSocket (url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`, { headers })
  await once(ws, 'open')
  return ws
}

/** Sends one frame and waits for the next answer (or the close code, as `close:<code>`). */
export async function sendFrame (ws: WebSocket, data: Buffer, binary: boolean): Promise<Outcome> {
  const answer = new Promise<Outcome>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer to the frame in 10 s')), 10_000)
    const done = (outcome: Outcome): void => {
      clearTimeout(timer)
      ws.off('message', onMessage)
      ws.off('close', onClose)
      resolve(outcome)
    }
    const onMessage = (raw: Buffer, isBinary: boolean): void => {
      const a = isBinary ? unpackr.unpack(raw) : JSON.parse(raw.toString())
      done(a.ok === true ? { status: 200, code: 'OK' } : { status: 0, code: String(a.error?.code) })
    }
    const onClose = (code: number): void => done({ status: 0, code: `close:${code}` })
    ws.on('message', onMessage)
    ws.on('close', onClose)
  })
  ws.send(data, { binary })
  return await answer
}

/** Sends one case over one transport; for WebSocket, on the socket given. */
export async function sendBadInput (
  url: string, c: BadInput, transport: Transport, ws?: WebSocket, headers: Record<string, string> = {}
): Promise<Outcome> {
  const msgpack = transport.endsWith('msgpack')
  if (transport.startsWith('http')) return await sendHttp(url, c, msgpack, headers)
  if (ws === undefined) throw new Error('a WebSocket transport needs a socket')
  const isJob = c.value !== null && typeof c.value === 'object' && !Array.isArray(c.value)
  const data = c.bytes?.[msgpack ? 'msgpack' : 'json'] ?? encode(isJob ? { id: 1, ...(c.value as object) } : c.value, msgpack)
  return await sendFrame(ws, Buffer.from(data), msgpack)
}

/** Whether an outcome is what the case expects; over WebSocket there is no status, only the code. */
export function matches (c: BadInput, transport: Transport, outcome: Outcome): boolean {
  if (c.items !== undefined) return JSON.stringify(outcome.items) === JSON.stringify(c.items)
  if (transport.startsWith('ws')) return outcome.code === c.code
  return outcome.status === c.status && outcome.code === c.code
}
