import type WebSocket from 'ws'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { badInputPairs, openJobSocket, sendBadInput, sendFrame, type Transport } from '../support/bad-inputs.js'
import { startServer, type RunningServer } from '../helpers.js'

// One real server (a child process, hybrid: two cluster workers, each with a pool) for the table.
let server: RunningServer
const sockets = new Map<Transport, WebSocket>()

beforeAll(async () => {
  server = await startServer({ MODE: 'hybrid', PROCESSES: '2', WS_MAX_IN_FLIGHT: '20', WS_MAX_FRAME_BYTES: '65536' })
}, 30_000)

afterAll(async () => {
  for (const ws of sockets.values()) ws.terminate()
  expect(await server.stop()).toBe(0)
})

async function socketFor (transport: Transport): Promise<WebSocket | undefined> {
  if (!transport.startsWith('ws')) return undefined
  let ws = sockets.get(transport)
  if (ws === undefined || ws.readyState !== ws.OPEN) {
    ws = await openJobSocket(server.url)
    sockets.set(transport, ws)
  }
  return ws
}

describe('every hostile input gets its coded 4xx, over HTTP JSON, HTTP MessagePack and WebSocket', () => {
  it.each(badInputPairs().map(([c, t]) => [c.name, t, c] as const))('%s over %s', async (_name, transport, c) => {
    const outcome = await sendBadInput(server.url, c, transport, await socketFor(transport))
    if (c.items !== undefined) expect(outcome.items).toEqual(c.items)
    else if (transport.startsWith('ws')) expect(outcome.code).toBe(c.code)
    else expect(outcome).toEqual({ status: c.status, code: c.code })
    // A bad frame never costs the client its connection.
    if (transport.startsWith('ws')) expect(sockets.get(transport)?.readyState).toBe(1)
  })
})

describe('frames a connection cannot take', () => {
  it('closes a frame over WS_MAX_FRAME_BYTES with 1009, and the next connection is served', async () => {
    const ws = await openJobSocket(server.url)
    const outcome = await sendFrame(ws, Buffer.from(JSON.stringify({ id: 1, task: 'fib', input: { pad: 'x'.repeat(70_000) } })), false)
    expect(outcome.code).toBe('close:1009')
    const next = await openJobSocket(server.url)
    expect(await sendFrame(next, Buffer.from('{"id":2,"task":"fib","input":{"n":5}}'), false)).toEqual({ status: 200, code: 'OK' })
    next.terminate()
  })

  it('answers a burst of 200 frames every one, those past WS_MAX_IN_FLIGHT as OVERLOADED, and keeps the connection', async () => {
    const ws = await openJobSocket(server.url)
    const answers: Array<{ ok: boolean, error?: { code: string } }> = []
    const all = new Promise<void>((resolve) => ws.on('message', (raw: Buffer) => {
      answers.push(JSON.parse(raw.toString()))
      if (answers.length === 200) resolve()
    }))
    for (let id = 0; id < 200; id++) ws.send(JSON.stringify({ id, task: 'sleep', input: { ms: 200 } }))
    await all
    const overloaded = answers.filter((a) => a.error?.code === 'OVERLOADED').length
    expect(answers.filter((a) => a.ok).length).toBeGreaterThanOrEqual(20)
    expect(overloaded).toBeGreaterThan(0)
    expect(answers.filter((a) => a.ok).length + overloaded).toBe(200)
    expect(await sendFrame(ws, Buffer.from('{"id":"after","task":"fib","input":{"n":5}}'), false)).toEqual({ status: 200, code: 'OK' })
    ws.terminate()
  })
})

describe('afterwards', () => {
  it('serves the next client normally on every transport, with no worker lost', async () => {
    const ok = { value: { task: 'fib', input: { n: 10 } }, name: 'ok', status: 200, code: 'OK' }
    for (const transport of ['http-json', 'http-msgpack', 'ws-json', 'ws-msgpack'] as const) {
      expect(await sendBadInput(server.url, ok, transport, await socketFor(transport))).toMatchObject({ code: 'OK' })
    }
    expect(server.logs.filter((l) => l.msg === 'worker died while serving; replacing it' || l.level === 60)).toEqual([])
    expect(server.stderr()).toBe('')
  })
})
