import { getEventListeners } from 'node:events'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { wait } from '../../src/tasks/wait.js'

describe('wait: a timer an abort ends', () => {
  beforeEach(() => { vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }) })
  afterEach(() => { vi.useRealTimers() })

  it('resolves with its value after the time, and leaves no listener on the signal', async () => {
    const controller = new AbortController()
    const waiting = wait(50, { sleptMs: 50 }, controller.signal)
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1)
    vi.advanceTimersByTime(50)
    await expect(waiting).resolves.toEqual({ sleptMs: 50 })
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0)
  })

  it('rejects with the abort reason as soon as the signal aborts, and clears its timer', async () => {
    const controller = new AbortController()
    const waiting = wait(50, 'late', controller.signal)
    const reason = new Error('cancelled')
    controller.abort(reason)
    await expect(waiting).rejects.toBe(reason)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('rejects at once on a signal already aborted', async () => {
    const reason = new Error('gone')
    await expect(wait(50, 'never', AbortSignal.abort(reason))).rejects.toBe(reason)
    expect(vi.getTimerCount()).toBe(0)
  })
})
