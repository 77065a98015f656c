import { describe, expect, it } from 'vitest'
import { LOOP_TICK_MS, LoopDelay, QueueDelayRule } from '../src/admission.js'
import { WaitingLine } from '../src/placement/waiting-line.js'

const rule = (now = 0): QueueDelayRule => new QueueDelayRule({ targetMs: 10, intervalMs: 100 }, now)

describe('QueueDelayRule (CoDel as Facebook servers use it), on a fake clock', () => {
  it('admits every job while the delay is under the target', () => {
    const r = rule()
    for (let t = 0; t < 1000; t += 10) expect(r.admits(9.9, t)).toBe(true)
  })

  it('absorbs a burst: a queue seen empty within the interval may wait up to the interval', () => {
    const r = rule()
    r.empty(50)
    expect(r.admits(80, 120)).toBe(true) // 70 ms after empty: still a burst
    expect(r.admits(101, 120)).toBe(false) // but never past the interval itself
    expect(r.boundMs(120)).toBe(100)
  })

  it('once the queue has stood non-empty for a whole interval, admits only under the target', () => {
    const r = rule()
    r.empty(0)
    expect(r.admits(11, 100)).toBe(true)
    expect(r.admits(11, 101)).toBe(false)
    expect(r.boundMs(101)).toBe(10)
    expect(r.admits(10, 101)).toBe(true) // at the target is still admitted
  })

  it('goes back to the burst allowance as soon as the queue has caught up', () => {
    const r = rule()
    expect(r.admits(50, 500)).toBe(false) // standing since 0
    r.empty(510)
    expect(r.admits(50, 520)).toBe(true)
  })

  it('a target of 0 never sheds', () => {
    const off = new QueueDelayRule({ targetMs: 0, intervalMs: 100 }, 0)
    expect(off.enabled).toBe(false)
    expect(off.admits(1e9, 1e9)).toBe(true)
  })
})

describe('LoopDelay: the event loop as a queue, on a fake clock', () => {
  it('reads how far past its tick the loop is, at any moment, and refuses past the bound', () => {
    let now = 0
    const loop = new LoopDelay(rule(), () => now)
    now = LOOP_TICK_MS
    loop.tick() // on time: the loop has caught up
    now += 3
    expect(loop.delayMs()).toBe(0) // not yet due
    expect(loop.refusal()).toBeUndefined()
    now += 60 // a 63 ms turn, still in the burst allowance
    expect(loop.delayMs()).toBe(58)
    expect(loop.refusal()).toBeUndefined()
    now += 50 // 113 ms without a tick on time: a standing queue, over the 10 ms target
    const refused = loop.refusal() as Error & { code: string, statusCode: number }
    expect(refused.code).toBe('OVERLOADED')
    expect(refused.statusCode).toBe(503)
    expect(refused.message).toMatch(/event loop is 108 ms behind, over the 10 ms allowed/)
  })

  it('a late tick does not count as caught up; an on-time one does', () => {
    let now = 0
    const loop = new LoopDelay(rule(), () => now)
    for (let i = 0; i < 10; i++) {
      now += LOOP_TICK_MS + 20 // every tick 20 ms late, for 250 ms
      loop.tick()
    }
    now += LOOP_TICK_MS + 12
    expect(loop.refusal()).toBeDefined() // standing, 12 ms > 10 ms
    now += 1
    loop.tick() // 13 ms late: still not caught up
    now += LOOP_TICK_MS
    loop.tick() // on time
    now += LOOP_TICK_MS + 30
    expect(loop.refusal()).toBeUndefined() // a burst again: 30 ms < 100 ms
  })
})

describe('WaitingLine: jobs waiting for a pool thread, with the age of the oldest', () => {
  const never = new AbortController().signal

  it('lets waiters through first in first out, and says how long the oldest has waited', async () => {
    const line = new WaitingLine()
    const through: string[] = []
    expect(line.oldestWaitMs(100)).toBe(0)
    const a = line.wait(10, never).then(() => through.push('a'))
    const b = line.wait(20, never).then(() => through.push('b'))
    const c = line.wait(30, never).then(() => through.push('c'))
    expect(line.size).toBe(3)
    expect(line.oldestWaitMs(100)).toBe(90)
    expect(line.next()).toBe(true)
    expect(line.oldestWaitMs(100)).toBe(80)
    expect(line.next()).toBe(true)
    expect(line.next()).toBe(true)
    expect(line.next()).toBe(false)
    await Promise.all([a, b, c])
    expect(through).toEqual(['a', 'b', 'c'])
    expect(line.size).toBe(0)
  })

  it('an aborted waiter leaves the line at once, rejected with the reason, and is never let through', async () => {
    const line = new WaitingLine()
    const controller = new AbortController()
    const first = line.wait(10, controller.signal)
    const second = line.wait(20, never)
    controller.abort(new Error('client gone'))
    await expect(first).rejects.toThrow('client gone')
    expect(line.size).toBe(1)
    expect(line.oldestWaitMs(100)).toBe(80) // the aborted one no longer counts
    expect(line.next()).toBe(true)
    await second
    expect(line.next()).toBe(false)
  })

  it('keeps its order across thousands of waits', async () => {
    const line = new WaitingLine()
    const order: number[] = []
    const all = Array.from({ length: 5000 }, (_, i) => line.wait(i, never).then(() => order.push(i)))
    while (line.next()) { /* let everyone through */ }
    await Promise.all(all)
    expect(order).toEqual(Array.from({ length: 5000 }, (_, i) => i))
  })
})
