import { once } from 'node:events'
import { connect as tcpConnect } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { Packr } from 'msgpackr'
import WebSocket from 'ws'
import { decodeMsgpack, encodeMsgpack } from '../../src/http/codec.js'
import { build, waitFor } from '../helpers.js'
import { sum } from '../support/prometheus.js'

const sockets: WebSocket[] = []
const apps: FastifyInstance[] = []
afterEach(async () => {
  for (const s of sockets.splice(0)) s.terminate()
  // Closing twice is harmless: a test that closes its app itself has already waited for it.
  await Promise.all(apps.splice(0).map(async (app) => await app.close()))
})

/** A built app listening on a free loopback port: a real socket for real WebSocket clients. */
async function listen (env: Record<string, string>): Promise<{ app: FastifyInstance, url: string }> {
  const app = await build(env)
  apps.push(app)
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url }
}

async function connect (url: string, options: WebSocket.ClientOptions = {}, path = '/ws'): Promise<WebSocket> {
  const ws = new WebSocket(url.replace('http', 'ws') + path, options)
  sockets.push(ws)
  await once(ws, 'open')
  return ws
}

/** Collects answers as they come, decoding each in its frame's encoding. */
function answers (ws: WebSocket): {
  list: Array<Record<string,
  any>>,
  next: (n: number) => Promise<Array<Record<string,
  any>>>
} {
  const list: Array<Record<string, any>> = []
  const waiters: Array<() => void> = []
  ws.on('message', (data: Buffer, binary) => {
    list.push({ ...(binary ? decodeMsgpack(data) as object : JSON.parse(data.toString()) as object), binary })
    for (const w of waiters.splice(0)) w()
  })
  const next = async (n: number): Promise<Array<Record<string, any>>> => {
    while (list.length < n) await new Promise<void>((resolve) => waiters.push(resolve))
    return list.slice(0, n)
  }
  return { list, next }
}

const sendJson = (ws: WebSocket, frame: unknown): void => ws.send(JSON.stringify(frame))

describe('GET /ws', () => {
  it('answers a JSON frame in a JSON text frame: the id, then the answer HTTP gives (task, kind, result, timing, ranOn)', async () => {
    const { url } = await listen({ MODE: 'event-loop' })
    const ws = await connect(url)
    const got = answers(ws)
    sendJson(ws, { id: 'a1', task: 'fib', input: { n: 20 } })
    const [answer] = await got.next(1)
    expect(answer).toEqual({
      id: 'a1',
      ok: true,
      task: 'fib',
      kind: 'cpu',
      result: 6765,
      binary: false,
      timing: { queuedMs: 0, runMs: expect.any(Number), totalMs: expect.any(Number) },
      ranOn: { pid: process.pid, threadId: 0, via: 'inline' }
    })
  })

  it('one job path: the same job gets the same answer shape, and the same error, over HTTP, in a batch and over WebSocket', async () => {
    const { app, url } = await listen({ MODE: 'hybrid', PROCESSES: '1', THREADS: '1' })
    const ws = await connect(url)
    const got = answers(ws)
    const jobs = [{ task: 'fib', input: { n: 10 } }, { task: 'fib', input: { n: 99 } }, { task: 'fib', input: { n: 1 }, extra: true }, { task: 'nope' }]
    jobs.forEach((job, i) => sendJson(ws, { id: i, ...job }))
    const overWs = (await got.next(jobs.length)).sort((a, b) => a.id - b.id).map(
      ({ id: _id, binary: _binary, ...rest }) => rest
    )
    const overHttp = await Promise.all(jobs.map(async (job) => {
      const res = await app.inject({ method: 'POST', url: '/jobs', payload: job })
      return res.statusCode === 200 ? { ok: true, ...res.json() } : { ok: false, error: res.json() }
    }))
    const inBatch = (await app.inject({ method: 'POST', url: '/jobs/batch', payload: { jobs } })).json().results as Array<Record<string, any>>
    const shape = (a: Record<string, any>): unknown => a.ok === true
      ? { ...a, timing: Object.keys(a.timing), ranOn: { ...a.ranOn, threadId: typeof a.ranOn.threadId } }
      : { ok: false, error: { ...a.error, message: typeof a.error.message } }
    expect(overWs.map(shape)).toEqual(overHttp.map(shape))
    expect(inBatch.map(shape)).toEqual(overHttp.map(shape))
    expect(overHttp.map((a) => a.ok ? 'ok' : a.error.code)).toEqual(['ok', 'BAD_INPUT', 'BAD_INPUT', 'UNKNOWN_TASK'])
    expect(overHttp[0]).toMatchObject({ task: 'fib', kind: 'cpu', result: 55, ranOn: { via: 'pool' } })
    expect(overWs[1]).toMatchObject({ ok: false, error: { statusCode: 400, code: 'BAD_INPUT', error: 'Bad Request', message: 'input.n must be <= 35 (task fib)' } })
  })

  it('answers a MessagePack frame in a binary frame', async () => {
    const { url } = await listen({ MODE: 'hybrid', PROCESSES: '1', THREADS: '1' })
    const ws = await connect(url)
    const got = answers(ws)
    ws.send(encodeMsgpack({ id: 7, task: 'primes', input: { limit: 100 } }))
    const [answer] = await got.next(1)
    expect(answer).toMatchObject({ id: 7, ok: true, result: { count: 25, largest: 97 }, binary: true, ranOn: { via: 'pool' } })
  })

  it('answers in completion order: a fast job overtakes a slow one', async () => {
    const { url } = await listen({ MODE: 'event-loop' })
    const ws = await connect(url)
    const got = answers(ws)
    sendJson(ws, { id: 'slow', task: 'sleep', input: { ms: 300 } })
    sendJson(ws, { id: 'fast', task: 'fib', input: { n: 5 } })
    expect((await got.next(2)).map((a) => a.id)).toEqual(['fast', 'slow'])
  })

  it('answers a job past the in-flight cap with OVERLOADED at once, counts it in /metrics, and the others normally', async () => {
    const { app, url } = await listen({ MODE: 'event-loop', WS_MAX_IN_FLIGHT: '2' })
    const ws = await connect(url)
    const got = answers(ws)
    for (const id of [1, 2, 3]) sendJson(ws, { id, task: 'sleep', input: { ms: 300 } })
    const [first, ...rest] = await got.next(3)
    expect(first).toMatchObject({ id: 3, ok: false, error: { code: 'OVERLOADED', message: expect.stringContaining('at most 2 jobs in flight') } })
    expect(rest.map((a) => [a.id, a.ok]).sort()).toEqual([[1, true], [2, true]])
    // A refusal before the frame became a job: not in jobs_total, which has no task for it to trust.
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    expect(sum(metrics, 'requests_refused_total', { code: 'OVERLOADED' })).toBe(1)
    expect(sum(metrics, 'jobs_total', { outcome: 'OVERLOADED' })).toBe(0)
  })

  it.each([
    ['text that is not JSON', 'garbage', null, 'BAD_INPUT'],
    ['a JSON array', '[1,2,3]', null, 'BAD_INPUT'],
    ['an object id', '{"id":{"x":1},"task":"fib","input":{"n":1}}', null, 'BAD_INPUT'],
    ['an id too long', JSON.stringify({ id: 'x'.repeat(257), task: 'fib', input: { n: 1 } }), null, 'BAD_INPUT'],
    ['a prototype key', '{"id":1,"task":"fib","input":{"n":1},"__proto__":{}}', null, 'BAD_INPUT'],
    ['an unknown field', '{"id":1,"task":"fib","input":{"n":1},"priority":9}', 1, 'BAD_INPUT'],
    ['a string for a number', '{"id":2,"task":"fib","input":{"n":"1"}}', 2, 'BAD_INPUT'],
    ['an unknown task', '{"id":3,"task":"../etc/passwd","input":{}}', 3, 'UNKNOWN_TASK']
  ])('answers %s with its code, and stays open', async (_name, frame, id, code) => {
    const { url } = await listen({ MODE: 'event-loop' })
    const ws = await connect(url)
    const got = answers(ws)
    ws.send(frame)
    sendJson(ws, { id: 'after', task: 'fib', input: { n: 3 } })
    const [bad, good] = await got.next(2)
    expect(bad).toMatchObject({ id, ok: false, error: { code, message: expect.any(String) } })
    expect(good).toMatchObject({ id: 'after', ok: true, result: 2 })
  })

  it('answers an undecodable MessagePack frame in binary with id null, and stays open', async () => {
    const { url } = await listen({ MODE: 'event-loop' })
    const ws = await connect(url)
    const got = answers(ws)
    ws.send(Buffer.from([0x82, 0xa2, 0x69]))
    ws.send(encodeMsgpack({ id: 1, task: 'fib', input: { n: 4 } }))
    const [bad, good] = await got.next(2)
    expect(bad).toMatchObject({ id: null, ok: false, binary: true, error: { code: 'BAD_INPUT' } })
    expect(good).toMatchObject({ id: 1, ok: true, result: 3 })
  })

  const rich = new Packr({ moreTypes: true, useBigIntExtension: true })
  it.each([
    ['a Date extension', rich.pack({ id: 1, task: 'fib', input: { n: new Date(0) } })],
    ['a RegExp extension', rich.pack({ id: 1, task: 'fib', input: { n: /x/ } })],
    ['a BigInt', rich.pack({ id: 10n ** 30n, task: 'fib', input: { n: 1 } })],
    ['binary data', Buffer.concat([Buffer.from([0x83, 0xa2, 0x69, 0x64, 0xc4, 0x01, 0x00]), encodeMsgpack('task').subarray(0), encodeMsgpack('fib'), encodeMsgpack('input'), encodeMsgpack({})])],
    ['nesting 100,000 deep', Buffer.concat([Buffer.alloc(100_000, 0x91), Buffer.from([0x01])])],
    ['trailing bytes', Buffer.concat([encodeMsgpack({ id: 1, task: 'fib', input: { n: 1 } }), Buffer.from([0x01])])]
  ])('answers a MessagePack frame with %s with id null and BAD_INPUT, and stays open', async (_name, frame) => {
    const { url } = await listen({ MODE: 'event-loop' })
    const ws = await connect(url)
    const got = answers(ws)
    ws.send(frame)
    ws.send(encodeMsgpack({ id: 'after', task: 'fib', input: { n: 3 } }))
    const [bad, good] = await got.next(2)
    expect(bad).toMatchObject({ id: null, ok: false, binary: true, error: { code: 'BAD_INPUT' } })
    expect(good).toMatchObject({ id: 'after', ok: true, result: 2 })
  })

  it('closes with 1009 on a frame over the size limit', async () => {
    const { url } = await listen({ MODE: 'event-loop', WS_MAX_FRAME_BYTES: '1024' })
    const ws = await connect(url)
    ws.send(JSON.stringify({ id: 1, task: 'fib', input: { n: 1 }, pad: 'x'.repeat(2000) }))
    const [code] = await once(ws, 'close') as [number]
    expect(code).toBe(1009)
  })

  it('closes a peer that stops answering pings', async () => {
    const { url } = await listen({ MODE: 'event-loop', WS_PING_INTERVAL_MS: '100' })
    const alive = await connect(url)
    const dead = await connect(url, { autoPong: false })
    const [code] = await once(dead, 'close') as [number]
    expect(code).toBe(1006) // terminated: no close frame for a peer that is not there
    expect(alive.readyState).toBe(WebSocket.OPEN)
  })

  it('stops reading from a client that does not read its answers, and loses nothing', async () => {
    const bound = 65_536
    const { app, url } = await listen({ MODE: 'event-loop', WS_MAX_BUFFERED_BYTES: String(bound) })
    const ws = await connect(url)
    const got = answers(ws)
    ws.pause() // this client reads nothing for now
    const id = 'i'.repeat(240)
    const frames = 60_000 // about 24 MB of answers: more than the kernel's socket buffers hold
    for (let i = 0; i < frames; i++) sendJson(ws, { id: `${id}${i}`, task: 'fib', input: { n: 1 } })
    await waitFor(() => app.websockets.stats().pauses > 0, 20_000)
    // The server stopped taking frames once its unsent answers passed the bound; past it go only
    // the answers to frames it had already read (one socket read: at most 64 KiB of frames, fewer
    // bytes of answers than 128 KiB).
    expect(app.websockets.stats().peakUnsentBytes).toBeLessThan(bound + 128 * 1024)
    ws.resume()
    const all = await got.next(frames)
    expect(all.every((a) => a.ok)).toBe(true)
    expect(new Set(all.map((a) => a.id)).size).toBe(frames)
  })

  it('answers what is in flight when the server closes, then closes with 1001', async () => {
    const { app, url } = await listen({ MODE: 'event-loop' })
    const ws = await connect(url)
    const got = answers(ws)
    sendJson(ws, { id: 'last', task: 'sleep', input: { ms: 300 } })
    await new Promise((resolve) => setTimeout(resolve, 50))
    const closed = once(ws, 'close') as Promise<[number]>
    await app.close()
    expect((await got.next(1))[0]).toMatchObject({ id: 'last', ok: true })
    expect((await closed)[0]).toBe(1001)
  })
})

describe('cancellation when the client goes away', () => {
  async function threadOfNextJob (url: string): Promise<number> {
    const res = await fetch(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"task":"fib","input":{"n":5}}' })
    expect(res.status).toBe(200)
    return ((await res.json()) as { ranOn: { threadId: number } }).ranOn.threadId
  }

  it('a closed WebSocket aborts its running pool job: the one thread is replaced, not held for 10 s', async () => {
    const { url } = await listen({ MODE: 'hybrid', PROCESSES: '1', THREADS: '1', JOB_TIMEOUT_MS: '60000' })
    const before = await threadOfNextJob(url)
    const ws = await connect(url)
    sendJson(ws, { id: 1, task: 'spin', input: { ms: 10_000 } })
    await new Promise((resolve) => setTimeout(resolve, 300))
    ws.close()
    expect(await threadOfNextJob(url)).not.toBe(before)
  })

  it('an HTTP client that aborts cancels its running pool job likewise', async () => {
    const { url } = await listen({ MODE: 'hybrid', PROCESSES: '1', THREADS: '1', JOB_TIMEOUT_MS: '60000' })
    const before = await threadOfNextJob(url)
    const controller = new AbortController()
    const pending = fetch(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"task":"spin","input":{"ms":10000}}', signal: controller.signal })
    await new Promise((resolve) => setTimeout(resolve, 300))
    controller.abort()
    await expect(pending).rejects.toThrow()
    expect(await threadOfNextJob(url)).not.toBe(before)
  })

  it('a closed WebSocket stops its I/O job on a pool thread without killing the thread', async () => {
    const { url } = await listen({ MODE: 'threads', THREADS: '1', JOB_TIMEOUT_MS: '60000' })
    const ws = await connect(url)
    const got = answers(ws)
    sendJson(ws, { id: 0, task: 'sleep', input: { ms: 1 } })
    const [first] = await got.next(1)
    sendJson(ws, { id: 1, task: 'sleep', input: { ms: 30_000 } })
    await new Promise((resolve) => setTimeout(resolve, 300))
    ws.close()
    // The one thread stopped waiting and took the next job: the same thread, not a replacement.
    const res = await fetch(`${url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"task":"sleep","input":{"ms":1}}' })
    expect(((await res.json()) as { ranOn: { threadId: number } }).ranOn.threadId).toBe(first?.ranOn.threadId)
  })

  it('a closed WebSocket stops its I/O jobs on the event loop', async () => {
    const { app, url } = await listen({ MODE: 'event-loop' })
    const ws = await connect(url)
    for (let id = 0; id < 50; id++) sendJson(ws, { id, task: 'sleep', input: { ms: 30_000 } })
    await new Promise((resolve) => setTimeout(resolve, 200))
    ws.close()
    await once(ws, 'close')
    // Nothing is left waiting: the server closes at once instead of after 30 s of sleeps.
    await app.close()
  })
})

describe('AUTH_TOKEN', () => {
  const token = 's3cret-token'

  it('refuses the upgrade with 401 before the handshake without the right token', async () => {
    const { url } = await listen({ MODE: 'event-loop', AUTH_TOKEN: token })
    for (const options of [{}, { headers: { authorization: 'Bearer wrong' } }]) {
      const ws = new WebSocket(url.replace('http', 'ws') + '/ws', options)
      ws.on('error', () => {}) // the refused handshake, reported again when the socket is torn down
      sockets.push(ws)
      const [, res] = await once(ws, 'unexpected-response') as [unknown, { statusCode: number }]
      expect(res.statusCode).toBe(401)
    }
  })

  it('closes the connection of every upgrade it refuses, so that nothing is left for a drain to wait on', async () => {
    // A client that keeps its end open after the refusal (a raw socket, not ws, which closes it).
    const { app, url } = await listen({ MODE: 'event-loop', AUTH_TOKEN: token })
    const { port } = new URL(url)
    const auth = `Authorization: Bearer ${token}\r\n`
    for (const [path, headers, status] of [['/ws', '', 401], ['/nope', '', 401], ['/nope', auth, 404]] as const) {
      const socket = tcpConnect(Number(port), '127.0.0.1')
      let text = ''
      socket.on('data', (d: Buffer) => { text += d.toString() })
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n${headers}Connection: Upgrade\r\nUpgrade: websocket\r\n` +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
      await once(socket, 'end') // the server closed its side
      socket.destroy()
      expect(text).toMatch(new RegExp(`^HTTP/1.1 ${status} .*connection: close`, 's'))
    }
    const open = async (): Promise<number> =>
      await new Promise((resolve) => app.server.getConnections((_, n) => resolve(n)))
    await waitFor(async () => await open() === 0)
  })

  it('takes the token in the header or in ?token=', async () => {
    const { url } = await listen({ MODE: 'event-loop', AUTH_TOKEN: token })
    for (const ws of [await connect(url, { headers: { authorization: `Bearer ${token}` } }), await connect(url, {}, `/ws?token=${token}`)]) {
      const got = answers(ws)
      sendJson(ws, { id: 1, task: 'fib', input: { n: 6 } })
      expect((await got.next(1))[0]).toMatchObject({ ok: true, result: 8 })
    }
  })

  it('guards every HTTP route but /health', async () => {
    const app = await build({ MODE: 'event-loop', AUTH_TOKEN: token })
    apps.push(app)
    expect((await app.inject({ url: '/health' })).statusCode).toBe(200)
    for (const [method, url] of [['GET', '/tasks'], ['POST', '/jobs'], ['POST', '/jobs/batch'], ['GET', '/nope']] as const) {
      const res = await app.inject({ method, url, payload: method === 'POST' ? { task: 'fib', input: { n: 1 } } : undefined })
      expect(res.statusCode, url).toBe(401)
      expect(res.json()).toMatchObject({ code: 'UNAUTHORIZED' })
      expect(res.headers['www-authenticate']).toBe('Bearer')
    }
    const wrong = await app.inject({ method: 'POST', url: '/jobs', headers: { authorization: `Bearer ${token}x` }, payload: { task: 'fib', input: { n: 1 } } })
    expect(wrong.statusCode).toBe(401)
    const ok = await app.inject({ method: 'POST', url: '/jobs', headers: { authorization: `Bearer ${token}` }, payload: { task: 'fib', input: { n: 1 } } })
    expect(ok.statusCode).toBe(200)
    const query = await app.inject({ method: 'POST', url: `/jobs?token=${token}`, payload: { task: 'fib', input: { n: 1 } } })
    expect(query.statusCode).toBe(401) // ?token= is for /ws only
  })
})
