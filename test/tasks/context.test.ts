import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { RunContext } from '../../src/tasks/context.js'

describe('a job\'s context, its abort', () => {
  beforeEach(() => { vi.useFakeTimers() })
  afterEach(() => { vi.useRealTimers() })

  it('wait() resolves with its value after its time, and leaves no timer behind', async () => {
    const job = new RunContext({ upstreamUrl: undefined })
    const waiting = job.wait(50, 'done')
    await vi.advanceTimersByTimeAsync(49)
    expect(vi.getTimerCount()).toBe(1)
    await vi.advanceTimersByTimeAsync(1)
    await expect(waiting).resolves.toBe('done')
    expect(vi.getTimerCount()).toBe(0)
  })

  it('an abort rejects a waiting wait() at once with its reason, and clears its timer', async () => {
    const job = new RunContext({ upstreamUrl: undefined })
    const waiting = job.wait(60_000, 'late')
    const reason = new Error('timed out')
    job.abort(reason)
    await expect(waiting).rejects.toBe(reason)
    expect(vi.getTimerCount()).toBe(0)
    expect(job.aborted).toBe(true)
    expect(job.reason).toBe(reason)
    await expect(job.wait(10, 'after')).rejects.toBe(reason)
  })

  it('two waits at once are both aborted (the second listens to the signal)', async () => {
    const job = new RunContext({ upstreamUrl: undefined })
    const first = job.wait(1000, 1)
    const second = job.wait(1000, 2)
    const reason = new Error('cancelled')
    job.abort(reason)
    await expect(first).rejects.toBe(reason)
    await expect(second).rejects.toBe(reason)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('a wait after one has ended takes the slot again and still hears the abort', async () => {
    const job = new RunContext({ upstreamUrl: undefined })
    const first = job.wait(10, 1)
    await vi.advanceTimersByTimeAsync(10)
    await expect(first).resolves.toBe(1)
    const second = job.wait(1000, 2)
    job.abort(new Error('gone'))
    await expect(second).rejects.toThrow('gone')
  })

  it('its signal is made when read, and carries the abort whether it was read before or after', () => {
    const before = new RunContext({ upstreamUrl: undefined })
    const early = before.signal
    expect(early.aborted).toBe(false)
    expect(before.signal).toBe(early)
    const reason = new Error('stop')
    before.abort(reason)
    expect(early.aborted).toBe(true)
    expect(early.reason).toBe(reason)

    const after = new RunContext({ upstreamUrl: undefined })
    after.abort(reason)
    after.abort(new Error('a second abort changes nothing'))
    expect(after.signal.aborted).toBe(true)
    expect(after.signal.reason).toBe(reason)
  })

  it('holds the resources it was given', () => {
    const job = new RunContext({ upstreamUrl: 'http://127.0.0.1:1' })
    const { upstreamUrl, postgres, redis } = job
    expect({ upstreamUrl, postgres, redis }).toEqual({ upstreamUrl: 'http://127.0.0.1:1', postgres: undefined, redis: undefined })
  })
})
