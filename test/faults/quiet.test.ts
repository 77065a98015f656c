import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { startServer, type RunningServer } from '../helpers.js'

const started: RunningServer[] = []
afterEach(async () => { for (const s of started.splice(0)) await s.stop() })

const MIX = [
  { task: 'fib', input: { n: 5 } },
  { task: 'sleep', input: { ms: 20 } },
  { task: 'http', input: { delayMs: 20 } }
]
const batch = Array.from({ length: 1000 }, (_, i) => MIX[i % MIX.length])

/** 1,000 jobs in flight over one WebSocket, every answer awaited. */
async function overOneSocket (url: string): Promise<number> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/ws`)
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  let answered = 0
  const done = new Promise<void>((resolve) => ws.on('message', () => { if (++answered === batch.length) resolve() }))
  batch.forEach((job, id) => ws.send(JSON.stringify({ id, ...job })))
  await done
  ws.close()
  return answered
}

describe('a batch of 1,000 jobs, and 1,000 jobs on one WebSocket', () => {
  it.each(['event-loop', 'hybrid', 'threads'])('%s: every one answered, and nothing on stderr (no MaxListenersExceededWarning)',
    async (mode) => {
      const server = await startServer({ MODE: mode, PROCESSES: '1' })
      started.push(server)
      const res = await fetch(`${server.url}/jobs/batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jobs: batch })
      })
      expect(res.status).toBe(200)
      expect(((await res.json()) as { results: unknown[] }).results).toHaveLength(1000)
      expect(await overOneSocket(server.url)).toBe(1000)
      expect(server.stderr()).toBe('')
    })
})
