import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDelayService, type DelayServiceProcess } from '../../src/upstream/spawn.js'

let upstream: DelayServiceProcess
beforeAll(async () => { upstream = await startDelayService() })
afterAll(() => upstream?.stop())

describe('the delay service, as its own process', () => {
  it('runs in a process other than this one', () => {
    expect(upstream.pid).not.toBe(process.pid)
    expect(upstream.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
  })

  it('answers /delay/:ms with the bytes and status asked for, after the delay', async () => {
    const started = performance.now()
    const res = await fetch(`${upstream.url}/delay/50?bytes=1234`)
    expect(res.status).toBe(200)
    expect((await res.arrayBuffer()).byteLength).toBe(1234)
    expect(performance.now() - started).toBeGreaterThanOrEqual(49)
    expect((await fetch(`${upstream.url}/delay/0?status=503`)).status).toBe(503)
  })

  it('answers /bytes/:n at once', async () => {
    const res = await fetch(`${upstream.url}/bytes/100`)
    expect((await res.arrayBuffer()).byteLength).toBe(100)
  })

  it.each(['/delay/abc', '/delay/60001', '/delay/1?bytes=-1', '/delay/1?status=700', '/bytes/99999999999'])('refuses %s with 400', async (path) => {
    const res = await fetch(`${upstream.url}${path}`)
    expect(res.status).toBe(400)
    await res.arrayBuffer()
  })

  it('answers 404 elsewhere', async () => {
    const res = await fetch(`${upstream.url}/nope`)
    expect(res.status).toBe(404)
    await res.arrayBuffer()
  })

  it('stops when asked, and refuses connections after', async () => {
    const other = await startDelayService()
    await other.stop()
    await expect(fetch(`${other.url}/health`)).rejects.toThrow()
  })
})
