import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { onNewConnection, postJob, startServer, type RunningServer } from '../helpers.js'

let server: RunningServer
let port: number
const sockets: Socket[] = []

beforeAll(async () => {
  server = await startServer({ MODE: 'hybrid', PROCESSES: '1', HEADERS_TIMEOUT_MS: '500', REQUEST_TIMEOUT_MS: '1000', KEEP_ALIVE_TIMEOUT_MS: '500' })
  port = Number(new URL(server.url).port)
}, 30_000)

afterAll(async () => {
  for (const s of sockets) s.destroy()
  expect(await server.stop()).toBe(0)
})

async function open (): Promise<{ socket: Socket, received: () => string, closed: Promise<number> }> {
  const socket = connect(port, '127.0.0.1')
  sockets.push(socket)
  await once(socket, 'connect')
  let text = ''
  socket.on('data', (d: Buffer) => { text += d.toString() })
  socket.on('error', () => {})
  const start = performance.now()
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - start)))
  return { socket, received: () => text, closed }
}

describe('slow and stalled clients are closed while others are served', () => {
  it('slowloris: headers trickled a byte at a time are cut off at HEADERS_TIMEOUT_MS', async () => {
    const { socket, closed } = await open()
    const trickle = 'POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + 'a'.repeat(200)
    let i = 0
    const timer = setInterval(() => { if (!socket.destroyed) socket.write(trickle[i++ % trickle.length]!) }, 50)
    // Served meanwhile.
    expect((await postJob(server.url, 'fib', { n: 10 })).status).toBe(200)
    const ms = await closed
    clearInterval(timer)
    // 500 ms timeout, checked once a second by Node.
    expect(ms).toBeLessThan(3_000)
  })

  it('a connection that sends nothing is closed too', async () => {
    const { closed } = await open()
    expect(await closed).toBeLessThan(3_000)
  })

  it('a stalled body is answered 408 and closed at REQUEST_TIMEOUT_MS', async () => {
    const { socket, received, closed } = await open()
    socket.write('POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"task":')
    expect((await postJob(server.url, 'fib', { n: 10 })).status).toBe(200)
    expect(await closed).toBeLessThan(3_500)
    expect(received()).toMatch(/^HTTP\/1\.1 408/)
  })

  it('an idle keep-alive connection is closed after KEEP_ALIVE_TIMEOUT_MS', async () => {
    const { socket, received, closed } = await open()
    socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    const ms = await closed
    expect(received()).toMatch(/^HTTP\/1\.1 200/)
    expect(ms).toBeLessThan(2_500)
  })

  it('none of these timeouts cuts a job that takes longer than them', async () => {
    const res = await onNewConnection(server.url, 'POST', '/jobs', JSON.stringify({ task: 'sleep', input: { ms: 1_600 } }))
    expect(res.status).toBe(200)
  })
})

describe('body limits per route', () => {
  it('/jobs takes 64 KiB, /jobs/batch 1 MiB', async () => {
    const pad = 'x'.repeat(100 * 1024)
    const single = await onNewConnection(server.url, 'POST', '/jobs', JSON.stringify({ task: 'fib', input: { n: 1, pad } }))
    expect(single.status).toBe(413)
    expect(JSON.parse(single.text)).toMatchObject({ code: 'TOO_LARGE' })
    // The same size is read by the batch route, and refused for what it says, not for its size.
    const batch = await onNewConnection(server.url, 'POST', '/jobs/batch', JSON.stringify({ jobs: [{ task: 'fib', input: { n: 1, pad } }] }))
    expect(batch.status).toBe(200)
    expect(JSON.parse(batch.text).results[0]).toMatchObject({ ok: false, error: { code: 'BAD_INPUT' } })
  })
})
