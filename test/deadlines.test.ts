import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Deadlines } from '../src/deadlines.js'

// JOB_TIMEOUT_MS for every job on one timer, on a fake clock (timers and performance.now).
describe('Deadlines: every job in flight on one timer', () => {
  beforeEach(() => { vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] }) })
  afterEach(() => { vi.useRealTimers() })

  it('expires each job at its own deadline, in the order they started, on one timer', () => {
    const line = new Deadlines(1000)
    const expired: number[] = []
    for (let i = 0; i < 100; i++) {
      line.add(() => expired.push(i))
      vi.advanceTimersByTime(5)
    }
    expect(vi.getTimerCount()).toBe(1)
    // The first started 500 ms ago: nothing is due yet.
    vi.advanceTimersByTime(499)
    expect(expired).toEqual([])
    vi.advanceTimersByTime(1)
    expect(expired).toEqual([0])
    vi.advanceTimersByTime(5 * 49)
    expect(expired).toEqual(Array.from({ length: 50 }, (_, i) => i))
    vi.advanceTimersByTime(1000)
    expect(expired).toHaveLength(100)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('never expires a job that ended first, wherever it stood in the line', () => {
    const line = new Deadlines(100)
    const expired: string[] = []
    const first = line.add(() => expired.push('first'))
    const middle = line.add(() => expired.push('middle'))
    line.add(() => expired.push('kept'))
    const last = line.add(() => expired.push('last'))
    expect(line.remove(middle)).toBe(true)
    expect(line.remove(first)).toBe(true)
    expect(line.remove(last)).toBe(true)
    expect(line.remove(last)).toBe(false)
    vi.advanceTimersByTime(100)
    expect(expired).toEqual(['kept'])
  })

  it('says a job is no longer in the line once its deadline has come, and starts again after it emptied', () => {
    const line = new Deadlines(100)
    let expired = 0
    const job = line.add(() => { expired++ })
    vi.advanceTimersByTime(100)
    expect(expired).toBe(1)
    expect(line.remove(job)).toBe(false)
    expect(vi.getTimerCount()).toBe(0)
    line.add(() => { expired++ })
    vi.advanceTimersByTime(99)
    expect(expired).toBe(1)
    vi.advanceTimersByTime(1)
    expect(expired).toBe(2)
  })

  it('arms no timer while jobs end, and none once the line is empty', () => {
    const line = new Deadlines(100)
    for (let i = 0; i < 10; i++) line.remove(line.add(() => { throw new Error('ended jobs do not expire') }))
    expect(vi.getTimerCount()).toBe(1)
    vi.advanceTimersByTime(100)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('stops its timer on close', () => {
    const line = new Deadlines(100)
    line.add(() => { throw new Error('closed') })
    line.close()
    expect(vi.getTimerCount()).toBe(0)
  })
})
