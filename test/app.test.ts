import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeMsgpack, encodeMsgpack } from '../src/http/codec.js'
import { startDelayService, type DelayServiceProcess } from '../src/upstream/spawn.js'
import { build } from './helpers.js'

let upstream: DelayServiceProcess
beforeAll(async () => { upstream = await startDelayService() })
afterAll(() => upstream.stop())

const job = (task: string, input: unknown): { method: 'POST', url: string, payload: object } =>
  ({ method: 'POST', url: '/jobs', payload: { task, input } })

describe('GET /health', () => {
  it('reports the effective configuration', async () => {
    const app = await build({ MODE: 'event-loop' })
    const res = await app.inject({ url: '/health' })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({
      status: 'ok', mode: 'event-loop', processes: 1, threads: 0, cpuJobs: 'inline', ioJobs: 'event-loop', dispatch: 'local', pid: process.pid, uptimeS: expect.any(Number)
    })
    expect(res.headers['server-timing']).toMatch(/^total;dur=\d+(\.\d+)?$/)
  })
})

describe('GET /tasks', () => {
  it('lists each task with its kind, description and input schema', async () => {
    const app = await build({ MODE: 'event-loop' })
    const { tasks } = (await app.inject({ url: '/tasks' })).json() as { tasks: Array<Record<string, any>> }
    const fib = tasks.find((t) => t.name === 'fib')
    expect(fib).toMatchObject({ kind: 'cpu', description: expect.any(String), input: { type: 'object', properties: { n: { maximum: 35 } } } })
    expect(tasks.map((t) => t.name)).toContain('fanout')
  })
})

describe('POST /jobs', () => {
  it('answers with the result, timing and where the job ran, and a Server-Timing header', async () => {
    const app = await build({ MODE: 'event-loop' })
    const res = await app.inject(job('fib', { n: 20 }))
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({
      task: 'fib',
      kind: 'cpu',
      result: 6765,
      timing: { queuedMs: 0, runMs: expect.any(Number), totalMs: expect.any(Number) },
      ranOn: { pid: process.pid, threadId: 0, via: 'inline' }
    })
    expect(res.headers['server-timing']).toMatch(/^queue;dur=0, run;dur=[\d.]+, total;dur=[\d.]+$/)
  })

  it('writes the answer\'s fields in the documented order, a structured result as the task returned it', async () => {
    // The answer is serialized from a response schema; fast-json-stringify writes required
    // properties first, so an answer schema that listed some as required would reorder them.
    const app = await build({ MODE: 'event-loop' })
    const res = await app.inject(job('primes', { limit: 100 }))
    expect(res.body).toMatch(/^\{"task":"primes","kind":"cpu","result":\{"count":25,"largest":97\},"timing":\{"queuedMs":0,"runMs":[\d.]+,"totalMs":[\d.]+\},"ranOn":\{"pid":\d+,"threadId":0,"via":"inline"\}\}$/)
  })

  it.each(['application/msgpack', 'application/x-msgpack', 'application/vnd.msgpack'])('takes %s and answers MessagePack when Accept asks', async (type) => {
    const app = await build({ MODE: 'event-loop' })
    const res = await app.inject({ method: 'POST', url: '/jobs', headers: { 'content-type': type, accept: type }, payload: encodeMsgpack({ task: 'primes', input: { limit: 100 } }) })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toBe('application/msgpack')
    expect(decodeMsgpack(res.rawPayload)).toMatchObject({ task: 'primes', result: { count: 25, largest: 97 } })
  })

  it('answers JSON to a MessagePack body when Accept does not ask for MessagePack', async () => {
    const app = await build({ MODE: 'event-loop' })
    const res = await app.inject({ method: 'POST', url: '/jobs', headers: { 'content-type': 'application/msgpack' }, payload: encodeMsgpack({ task: 'fib', input: { n: 5 } }) })
    expect(res.headers['content-type']).toMatch(/^application\/json/)
    expect(res.json().result).toBe(5)
  })

  it('encodes errors as MessagePack too when asked', async () => {
    const app = await build({ MODE: 'event-loop' })
    const res = await app.inject({ method: 'POST', url: '/jobs', headers: { accept: 'application/msgpack' }, payload: { task: 'nope' } })
    expect(res.statusCode).toBe(404)
    expect(res.headers['content-type']).toBe('application/msgpack')
    expect(decodeMsgpack(res.rawPayload)).toMatchObject({ statusCode: 404, code: 'UNKNOWN_TASK' })
  })

  it.each([
    ['malformed JSON', { 'content-type': 'application/json' }, '{"task":', 400, 'BAD_INPUT'],
    ['empty JSON body', { 'content-type': 'application/json' }, '', 400, 'BAD_INPUT'],
    ['a JSON array', { 'content-type': 'application/json' }, '[1,2]', 400, 'BAD_INPUT'],
    ['a string for a number', { 'content-type': 'application/json' }, '{"task":"fib","input":{"n":"30"}}', 400, 'BAD_INPUT'],
    ['an extra input field', { 'content-type': 'application/json' }, '{"task":"fib","input":{"n":3,"m":1}}', 400, 'BAD_INPUT'],
    ['an extra body field', { 'content-type': 'application/json' }, '{"task":"fib","input":{"n":3},"priority":1}', 400, 'BAD_INPUT'],
    ['input that is not an object', { 'content-type': 'application/json' }, '{"task":"fib","input":[30]}', 400, 'BAD_INPUT'],
    ['a number out of range', { 'content-type': 'application/json' }, '{"task":"fib","input":{"n":1000}}', 400, 'BAD_INPUT'],
    ['a prototype key', { 'content-type': 'application/json' }, '{"task":"fib","input":{"__proto__":{"n":1}}}', 400, 'BAD_INPUT'],
    ['malformed MessagePack', { 'content-type': 'application/msgpack' }, Buffer.from([0x82, 0xa4]), 400, 'BAD_INPUT'],
    ['an unknown task', { 'content-type': 'application/json' }, '{"task":"rm -rf","input":{}}', 404, 'UNKNOWN_TASK'],
    ['a path-like task', { 'content-type': 'application/json' }, '{"task":"../../src/server","input":{}}', 404, 'UNKNOWN_TASK'],
    ['text/plain', { 'content-type': 'text/plain' }, 'fib 30', 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['form data', { 'content-type': 'application/x-www-form-urlencoded' }, 'task=fib', 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['a body over 1 MiB', { 'content-type': 'application/json' }, `{"task":"${'x'.repeat(1024 * 1024)}"}`, 413, 'TOO_LARGE']
  ])('answers %s with its coded error', async (_name, headers, payload, status, code) => {
    const app = await build({ MODE: 'event-loop' })
    const res = await app.inject({ method: 'POST', url: '/jobs', headers, payload })
    expect(res.statusCode).toBe(status)
    expect(res.json()).toEqual({ statusCode: status, code, error: expect.any(String), message: expect.any(String) })
    expect(res.headers['server-timing']).toMatch(/^total;dur=/)
  })

  it('runs I/O jobs against the real delay service', async () => {
    const app = await build({ MODE: 'event-loop', UPSTREAM_URL: upstream.url })
    const http = await app.inject(job('http', { delayMs: 20, bytes: 1000 }))
    expect(http.json()).toMatchObject({ kind: 'io', result: { status: 200, bytes: 1000 }, ranOn: { via: 'event-loop' } })
    expect(http.json().timing.runMs).toBeGreaterThanOrEqual(19)
    const fanout = await app.inject(job('fanout', { calls: 10, delayMs: 5, failRate: 0.2 }))
    expect(fanout.json().result).toMatchObject({ calls: 10, succeeded: 8, failed: [{ index: 4 }, { index: 9 }] })
  })

  it('answers UPSTREAM_FAILED when the upstream fails beyond what the task tolerates', async () => {
    const app = await build({ MODE: 'event-loop', UPSTREAM_URL: 'http://127.0.0.1:1' })
    const res = await app.inject(job('http', { delayMs: 1 }))
    expect(res.statusCode).toBe(502)
    expect(res.json()).toMatchObject({ code: 'UPSTREAM_FAILED' })
  })

  it('answers 504 TIMEOUT for an I/O job past JOB_TIMEOUT_MS on the event loop', async () => {
    const app = await build({ MODE: 'event-loop', JOB_TIMEOUT_MS: '100' })
    const res = await app.inject(job('sleep', { ms: 5000 }))
    expect(res.statusCode).toBe(504)
    expect(res.json()).toMatchObject({ code: 'TIMEOUT', message: 'Job did not finish within 100 ms' })
  })
})

describe('POST /jobs/batch', () => {
  it('answers every job in input order; one failure never fails the batch', async () => {
    const app = await build({ MODE: 'event-loop', UPSTREAM_URL: upstream.url })
    const res = await app.inject({
      method: 'POST',
      url: '/jobs/batch',
      payload: {
        jobs: [
          { task: 'sleep', input: { ms: 30 } },
          { task: 'fib', input: { n: 10 } },
          { task: 'nope', input: {} },
          { task: 'fib', input: { n: '10' } },
          42,
          { task: 'fib', input: { n: 1 }, extra: true },
          { task: 'http', input: { delayMs: 5 } }
        ]
      }
    })
    expect(res.statusCode).toBe(200)
    const { results } = res.json() as { results: Array<Record<string, any>> }
    expect(results.map((r) => r.ok ? r.task : r.error.code)).toEqual(['sleep', 'fib', 'UNKNOWN_TASK', 'BAD_INPUT', 'BAD_INPUT', 'BAD_INPUT', 'http'])
    expect(results[1]).toMatchObject({ ok: true, result: 55 })
    expect(results[2]).toMatchObject({ ok: false, error: { statusCode: 404, code: 'UNKNOWN_TASK', message: expect.any(String) } })
  })

  it.each([
    ['no jobs', { jobs: [] }],
    ['more than 1,000 jobs', { jobs: Array.from({ length: 1001 }, () => ({ task: 'fib', input: { n: 1 } })) }],
    ['jobs that is not an array', { jobs: { task: 'fib' } }]
  ])('refuses %s with BAD_INPUT', async (_name, payload) => {
    const app = await build({ MODE: 'event-loop' })
    const res = await app.inject({ method: 'POST', url: '/jobs/batch', payload })
    expect(res.statusCode).toBe(400)
    expect(res.json().code).toBe('BAD_INPUT')
  })
})

describe('routes that do not exist', () => {
  it.each([['GET', '/nope'], ['GET', '/jobs'], ['DELETE', '/jobs'], ['PUT', '/tasks'], ['GET', '/../etc/passwd']])('%s %s is 404 NOT_FOUND', async (method, url) => {
    const app = await build({ MODE: 'event-loop' })
    const res = await app.inject({ method: method as 'GET', url })
    expect(res.statusCode).toBe(404)
    expect(res.json()).toMatchObject({ statusCode: 404, code: 'NOT_FOUND', error: 'Not Found' })
  })
})
