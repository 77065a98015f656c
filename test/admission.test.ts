import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  CALIBRATION_QUIET_INTERVALS, LATE_SHARE, LOOP_IDLE_MS, LOOP_TICK_MS, LoopDelay, PROBE_PARTS, QueueDelayRule,
  REFUSAL_PAYOFF, RefusalPayoff, RETRY_STORM_RATIO, RetryStorm, STORM_HOLD_INTERVALS, TURN_GAP_MS, WaitCalibration
} from '../src/admission.js'
import { WaitingLine } from '../src/placement/waiting-line.js'

const rule = (now = 0): QueueDelayRule => new QueueDelayRule({ targetMs: 10, intervalMs: 100 }, now)

describe('QueueDelayRule (CoDel, applied at admission), on a fake clock', () => {
  it('admits every job while the delay stays under the target', () => {
    const r = rule()
    for (let t = 0; t < 1000; t += 10) expect(r.admits(9.9, t)).toBe(true)
    expect(r.standing).toBe(false)
  })

  it('absorbs a burst: until the delay has stayed over the target for a whole interval, a job may wait up to the interval', () => {
    const r = rule()
    expect(r.admits(50, 0)).toBe(true)
    expect(r.admits(99, 60)).toBe(true)
    expect(r.admits(101, 60)).toBe(false) // never past the interval itself
    expect(r.boundMs()).toBe(100)
    expect(r.standing).toBe(false)
  })

  it('once the delay has stayed over the target for a whole interval, the queue stands: admits only under the target', () => {
    const r = rule()
    r.observe(20, 0)
    r.observe(30, 50)
    expect(r.admits(11, 100)).toBe(false)
    expect(r.standing).toBe(true)
    expect(r.boundMs()).toBe(10)
    expect(r.admits(10, 101)).toBe(true) // at the target is still admitted
  })

  it('a sample under the target restarts the count: a burst with gaps is not a standing queue', () => {
    const r = rule()
    r.observe(50, 0)
    r.observe(5, 90)
    r.observe(50, 100)
    expect(r.admits(50, 150)).toBe(true)
    expect(r.standing).toBe(false)
  })

  it('stands until the delay has stayed under the target for a whole interval: one quick moment does not reopen the burst allowance', () => {
    const r = rule()
    r.observe(50, 0)
    r.observe(50, 100)
    expect(r.standing).toBe(true)
    r.observe(0, 110) // a moment with nothing waiting
    expect(r.admits(40, 120)).toBe(false) // still standing: refused
    r.observe(0, 130)
    r.observe(5, 200)
    expect(r.standing).toBe(true)
    r.observe(5, 230) // under since 130: a whole interval
    expect(r.standing).toBe(false)
    expect(r.admits(40, 240)).toBe(true)
  })

  it('a target of 0 never sheds', () => {
    const off = new QueueDelayRule({ targetMs: 0, intervalMs: 100 }, 0)
    expect(off.enabled).toBe(false)
    expect(off.admits(1e9, 1e9)).toBe(true)
  })
})

describe('LoopDelay: the event loop as a queue, on a fake clock', () => {
  // Each read its own turn, ended at once, with time between them: the ticker alone decides.
  const ownTurns = (fn: () => void): void => { fn() }

  it('reads how far past its tick the loop is, at any moment, and refuses past the bound', () => {
    let now = 0
    const loop = new LoopDelay(rule(), () => now, ownTurns)
    now = LOOP_TICK_MS
    loop.tick()
    now += 3
    expect(loop.delayMs()).toBe(0) // not yet due
    expect(loop.refusal()).toBeUndefined()
    now += 60 // a 63 ms turn: a burst, within the allowance
    expect(loop.delayMs()).toBe(58)
    expect(loop.refusal()).toBeUndefined()
    now += 50 // 108 ms behind: past the interval itself
    const refused = loop.refusal() as Error & { code: string, statusCode: number }
    expect(refused.code).toBe('OVERLOADED')
    expect(refused.statusCode).toBe(503)
    expect(refused.message).toMatch(/event loop is 108 ms behind, over the 100 ms allowed/)
  })

  it('late ticks make a standing queue; then the first jobs of each turn, though they read a small delay, do not end it', () => {
    let now = 0
    const loop = new LoopDelay(rule(), () => now, ownTurns)
    for (let i = 0; i < 6; i++) {
      now += LOOP_TICK_MS + 25 // every tick 25 ms late: the loop is behind, turn after turn
      loop.tick()
      expect(loop.refusal()).toBeUndefined() // each turn starts on time for its first job
      now += 12
      loop.refusal() // then falls behind within the turn
    }
    now += LOOP_TICK_MS + 12
    const refused = loop.refusal() as Error
    expect(refused.message).toMatch(/over the 10 ms allowed/) // standing: only the target is allowed now
    for (let i = 0; i < 25; i++) {
      now += LOOP_TICK_MS + 1 // on time again, for more than an interval
      loop.tick()
    }
    now += LOOP_TICK_MS + 30
    expect(loop.refusal()).toBeUndefined() // a burst again: 30 ms < 100 ms
  })
  it('counts what a request waited through the turn before, when the loop went straight on from it', () => {
    let now = 0
    let endTurn: (() => void) | undefined
    const loop = new LoopDelay(rule(), () => now, (fn) => { endTurn = fn })
    const turnEnds = (): void => { endTurn?.(); endTurn = undefined }
    now = LOOP_TICK_MS
    loop.tick()
    // A turn reads 8 requests and runs 1 ms of inline work after each: the ticker, due 5 ms
    // after the turn began, says 3 ms behind at its end, and a request read last waited 8 ms.
    for (let i = 0; i < 8; i++) {
      expect(loop.refusal()).toBeUndefined()
      now += 1
    }
    turnEnds()
    // The next turn starts straight away (the ticker first): what it reads may have arrived as the
    // turn before began, 8 ms ago, and by its 3rd ms it is past the interval's allowance.
    now += TURN_GAP_MS / 2
    loop.tick()
    expect(loop.delayMs()).toBe(0) // the ticker sees nothing
    expect(loop.refusal()).toBeUndefined() // 8.5 ms: within the 100 ms burst allowance
    now += 92
    expect(loop.refusal()?.message).toMatch(/event loop is 101 ms behind, over the 100 ms allowed/)
    turnEnds()
    // After a gap the loop waited for I/O: a request read now arrived now.
    now += 20
    loop.tick()
    expect(loop.refusal()).toBeUndefined()
  })

  /**
   * Closed-loop saturation after a stall: 50 connections, each sending again as soon as it is
   * answered, so every turn reads each of them once, in the same order, and answers it inline in
   * 0.11 ms; a turn lasts 5.5 ms and the next starts straight on. A request read late in a turn
   * arrived about one turn before. First a stall of the process makes the queue stand. Returns the
   * rule and how many requests were refused after the first 300 ms, of those read until 1 s.
   */
  function saturateAfterStall (byConnection: boolean): { r: QueueDelayRule, refusedLate: number } {
    let now = 0
    let endTurn: (() => void) | undefined
    const r = rule()
    const loop = new LoopDelay(r, () => now, (fn) => { endTurn = fn })
    let lastTick = 0
    const tick = (): void => { loop.tick(); lastTick = now }
    now = LOOP_TICK_MS
    tick()
    for (let i = 0; i < 5; i++) { // ticks 30 ms late for 175 ms
      now += LOOP_TICK_MS + 30
      tick()
    }
    expect(r.standing).toBe(true)
    const lastRead = new Map<number, number>()
    let refusedLate = 0
    while (now < 1000) {
      for (let c = 0; c < 50; c++) {
        const from = byConnection ? loop.arrivedFrom(lastRead.get(c), now) : undefined
        lastRead.set(c, now)
        if (loop.refusal(now, from) !== undefined && now > 300) refusedLate++
        now += 0.11
      }
      endTurn?.()
      endTurn = undefined
      now += TURN_GAP_MS / 2
      if (now - lastTick >= LOOP_TICK_MS) tick() // on time, within a turn's length
    }
    return { r, refusedLate }
  }

  it('bounds a request by its connection\'s previous one: closed-loop saturation after a stall stops standing', () => {
    // By the turns alone, a request read late in a turn may have arrived as the turn before began,
    // 10-11 ms before: each such read is a sample over the target, and the queue never stops standing.
    const byTurns = saturateAfterStall(false)
    expect(byTurns.r.standing).toBe(true)
    expect(byTurns.refusedLate).toBeGreaterThan(1000)
    // Its connection's previous request was read a turn before: 5.5 ms, under the target.
    const byConnection = saturateAfterStall(true)
    expect(byConnection.r.standing).toBe(false)
    expect(byConnection.refusedLate).toBe(0)
  })

  it('a request pipelined behind one read in the same turn is bounded by the turns, not by that read', () => {
    let now = 0
    let endTurn: (() => void) | undefined
    const loop = new LoopDelay(rule(), () => now, (fn) => { endTurn = fn })
    now = LOOP_TICK_MS
    loop.tick()
    for (let i = 0; i < 8; i++) now += 1 // a turn of 8 ms that reads nothing asking
    expect(loop.arrivedFrom(undefined, now)).toBe(now) // the turn begins now
    const begun = now
    now += 6
    // Read 6 ms into the turn, behind one read as it began: both arrived by the turn's start.
    expect(loop.arrivedFrom(begun, now)).toBe(begun)
    endTurn?.()
    now += 0.5
    // Straight on: a request whose connection's previous one was read 4 ms into the turn before arrived after it.
    expect(loop.arrivedFrom(begun + 4, now)).toBe(begun + 4)
    // One whose connection was last read long before arrived at the earliest as the turn before began.
    expect(loop.arrivedFrom(begun - 500, now)).toBe(begun)
  })

  it('with a target of 0 refuses nothing, however late, and still says how late (CPU_JOBS=auto reads it)', () => {
    let now = 0
    const loop = new LoopDelay(new QueueDelayRule({ targetMs: 0, intervalMs: 100 }, 0), () => now, ownTurns)
    now = LOOP_TICK_MS
    loop.tick()
    now += LOOP_TICK_MS + 500
    expect(loop.delayMs()).toBe(500)
    expect(loop.refusal()).toBeUndefined()
  })
})

describe('LoopDelay: its ticker sleeps while nothing reads the delay, on fake timers', () => {
  afterEach(() => { vi.useRealTimers() })

  it('stops ticking after LOOP_IDLE_MS without a read, and the next read starts it again, counting from then', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] })
    const loop = new LoopDelay(rule(Date.now()), () => Date.now(), (fn) => { fn() })
    loop.start()
    expect(vi.getTimerCount()).toBe(1)
    vi.advanceTimersByTime(LOOP_IDLE_MS / 2)
    expect(loop.refusal()).toBeUndefined() // a read: the idle time counts from here
    vi.advanceTimersByTime(LOOP_IDLE_MS - LOOP_TICK_MS)
    expect(vi.getTimerCount()).toBe(1)
    vi.advanceTimersByTime(2 * LOOP_TICK_MS)
    expect(vi.getTimerCount()).toBe(0)

    // Asleep for a long while: that is no delay of the loop's. The read wakes the ticker.
    vi.setSystemTime(Date.now() + 60_000)
    expect(loop.delayMs()).toBe(0)
    expect(loop.refusal()).toBeUndefined()
    expect(vi.getTimerCount()).toBe(1)
    // Awake, it measures as before: a loop held 40 ms past its tick reads 40 ms late.
    vi.setSystemTime(Date.now() + LOOP_TICK_MS + 40)
    expect(loop.delayMs()).toBe(40)
    loop.stop()
    expect(vi.getTimerCount()).toBe(0)
    // Stopped is stopped: a read does not start it.
    loop.refusal()
    expect(vi.getTimerCount()).toBe(0)
  })
})

describe('RefusalPayoff: the loop refuses only work whose refusal frees it, on a fake clock', () => {
  // A loop that spends `requestMs` on every request and `jobMs` more on each admitted inline job,
  // its active time counted as it goes; an interval of 100 ms at a time.
  const busyLoop = (requestMs: number, initialJobMs: number) => {
    let jobMs = initialJobMs
    let now = 0
    let active = 0
    const payoff = new RefusalPayoff(100, now, () => active)
    const interval = (requests: number, refused = 0): void => {
      for (let i = 0; i < requests; i++) {
        const refuse = i < refused
        payoff.read(refuse)
        active += requestMs
        if (!refuse) {
          active += jobMs
          payoff.ranInline(jobMs)
        }
      }
      now += 100
      payoff.roll(now)
    }
    return { payoff, interval, setJobMs: (ms: number) => { jobMs = ms } }
  }

  it('refuses as the rule says until an interval has read enough requests to tell', () => {
    const { payoff, interval } = busyLoop(0.05, 0)
    expect(payoff.pays()).toBe(true)
    interval(5) // too few to tell
    expect(payoff.pays()).toBe(true)
    expect(payoff.ratio).toBeUndefined()
  })

  it('does not refuse trivial jobs, or jobs the loop only starts: a refusal costs what serving them does', () => {
    const trivial = busyLoop(0.05, 0.001)
    trivial.interval(2000)
    expect(trivial.payoff.ratio).toBeCloseTo(0.02, 5)
    expect(trivial.payoff.pays()).toBe(false)
    const pool = busyLoop(0.08, 0) // hybrid: every job on the pool
    pool.interval(1000)
    expect(pool.payoff.pays()).toBe(false)
  })

  it('refuses jobs whose own work is at least REFUSAL_PAYOFF times a request\'s cost, and keeps doing so while refusing', () => {
    const spin = busyLoop(0.05, 1) // spin 1 ms inline: a refusal frees 20 times its cost
    spin.interval(90)
    expect(spin.payoff.ratio).toBeCloseTo(20, 5)
    expect(spin.payoff.pays()).toBe(true)
    // Refusing half of what it reads: the refusals' cost counts per request, the jobs' per job admitted.
    spin.interval(180, 90)
    expect(spin.payoff.ratio).toBeCloseTo(20, 5)
    expect(spin.payoff.pays()).toBe(true)
    const edge = busyLoop(0.05, 0.05 * REFUSAL_PAYOFF * 0.9)
    edge.interval(500)
    expect(edge.payoff.pays()).toBe(false)
  })

  it('follows a change of load, each interval weighing as much as all before it', () => {
    const load = busyLoop(0.05, 1)
    load.interval(90)
    expect(load.payoff.ratio).toBeCloseTo(20, 5)
    load.interval(5) // too few requests to tell: the estimate stands
    expect(load.payoff.ratio).toBeCloseTo(20, 5)
    load.setJobMs(0.001) // the jobs turn trivial
    const ratios: number[] = []
    for (let i = 0; i < 4; i++) {
      load.interval(500)
      ratios.push(load.payoff.ratio as number)
    }
    // 20, then the averages with 0.02: 10.01, 5.015, 2.5175, 1.26875.
    for (const [i, expected] of [10.01, 5.015, 2.5175, 1.26875].entries()) expect(ratios[i]).toBeCloseTo(expected, 6)
    expect(load.payoff.pays()).toBe(false)
  })
})

describe('LoopDelay with RefusalPayoff: past the bound, refused only where refusing frees the loop', () => {
  it('serves cheap work however late the loop is, and refuses costly work past the bound', () => {
    for (const [jobMs, refusedPast] of [[0.001, false], [1, true]] as const) {
      let now = 0
      let active = 0
      const loop = new LoopDelay(rule(), () => now, (fn) => { fn() }, () => active)
      // An interval of 200 requests, each 0.05 ms of the loop's and its job's own.
      for (let i = 0; i < 200; i++) {
        expect(loop.refusal(now)).toBeUndefined()
        active += 0.05 + jobMs
        loop.ranInline(jobMs)
      }
      now += 100
      loop.tick()
      expect(loop.refusalPayoff).toBeCloseTo(jobMs / 0.05, 5)
      now += 150 // 145 ms past the last tick: over the bound
      expect(loop.refusal(now) !== undefined).toBe(refusedPast)
      // A job checked again as it is about to run is not a request read twice.
      expect(loop.refusal(now, undefined, false) !== undefined).toBe(refusedPast)
    }
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

  it('an aborted waiter is never let through: it is rejected with the reason when it reaches the head', async () => {
    const line = new WaitingLine()
    const controller = new AbortController()
    const first = line.wait(10, controller.signal)
    const second = line.wait(20, never)
    controller.abort(new Error('client gone'))
    expect(line.next()).toBe(true) // lets the second through, past the aborted first
    await expect(first).rejects.toThrow('client gone')
    await second
    expect(line.size).toBe(0)
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

describe('WaitCalibration: the line\'s wait forecast, read through what admitted jobs then waited', () => {
  const TARGET = 50
  const INTERVAL = 100
  /** The pool's: CALIBRATION_QUIET_INTERVALS of its intervals. */
  const QUIET = CALIBRATION_QUIET_INTERVALS * INTERVAL
  /**
   * `jobs` jobs told one a millisecond from `from`, late (past the target) in `lateShare` of
   * cases, evenly spread; returns the time of the last.
   */
  function feed (c: WaitCalibration, jobs: number, lateShare: number, from = 0): number {
    let late = 0
    for (let i = 1; i <= jobs; i++) {
      const isLate = late < Math.floor(i * lateShare)
      if (isLate) late++
      c.waited(isLate ? TARGET + 30 : TARGET - 10, TARGET - 5, TARGET, from + i)
    }
    return from + jobs
  }

  it('keeps the forecast as it is while every job starts on time', () => {
    const c = new WaitCalibration(QUIET, 0)
    const t = feed(c, 10_000, 0)
    expect(c.factorAt(t)).toBe(1)
    c.waited(TARGET, TARGET, TARGET, t + 1) // at the target is on time
    expect(c.factorAt(t + 1)).toBe(1)
  })

  it('counts only jobs admitted on a forecast of at least half the target: a stall under a short line corrects no forecast', () => {
    const c = new WaitCalibration(QUIET, 0)
    for (let i = 0; i < 1000; i++) c.waited(TARGET * 3, TARGET / 2 - 0.1, TARGET, i)
    expect(c.factorAt(1000)).toBe(1)
    c.waited(TARGET * 3, TARGET / 2, TARGET, 1000)
    expect(c.factorAt(1000)).toBeGreaterThan(1)
  })

  it('counts the forecast for more while more than LATE_SHARE of the jobs wait past the target, and settles where that share is late', () => {
    const c = new WaitCalibration(QUIET, 0)
    let t = feed(c, 1000, 0.2)
    const raised = c.factorAt(t)
    expect(raised).toBeGreaterThan(1)
    // At exactly LATE_SHARE late, the factor holds (each late job's step is undone by the on-time ones).
    t = feed(c, 10_000, LATE_SHARE, t)
    expect(c.factorAt(t)).toBeCloseTo(raised, 1)
  })

  it('comes back to 1 once jobs start on time again, and never counts a forecast for less than itself', () => {
    const c = new WaitCalibration(QUIET, 0)
    let t = feed(c, 200, 0.5)
    expect(c.factorAt(t)).toBeGreaterThan(2)
    t = feed(c, 100_000, 0, t)
    expect(c.factorAt(t)).toBe(1)
  })

  it('is bounded above, and does nothing when shedding is off (target 0)', () => {
    const c = new WaitCalibration(QUIET, 0)
    for (let i = 0; i < 10_000; i++) c.waited(1e6, TARGET, TARGET, i)
    expect(c.factorAt(10_000)).toBe(5)
    const off = new WaitCalibration(QUIET, 0)
    off.waited(1e6, 1e6, 0, 1)
    expect(off.factorAt(1)).toBe(1)
  })

  it('fades once no job teaches it: its excess over 1 halves every quiet time after the first', () => {
    const c = new WaitCalibration(QUIET, 0)
    for (let i = 1; i <= 40; i++) c.waited(1e6, TARGET, TARGET, i) // 40 late jobs: 1 + 40 x 0.1
    expect(c.factorAt(40)).toBeCloseTo(5, 9)
    // Nothing counted for a quiet time: the factor holds.
    expect(c.factorAt(40 + QUIET)).toBeCloseTo(5, 9)
    expect(c.factorAt(40 + 2 * QUIET)).toBeCloseTo(3, 9)
    expect(c.factorAt(40 + 3 * QUIET)).toBeCloseTo(2, 9)
    expect(c.factorAt(40 + 60 * QUIET)).toBeCloseTo(1, 9)
    // A job that counts takes the faded factor as it finds it, and the fade starts over from it.
    c.waited(1e6, TARGET, TARGET, 40 + 2 * QUIET)
    expect(c.factorAt(40 + 2 * QUIET)).toBeCloseTo(3.1, 9)
    expect(c.factorAt(40 + 3 * QUIET)).toBeCloseTo(3.1, 9)
    expect(c.factorAt(40 + 4 * QUIET)).toBeCloseTo(2.05, 9)
  })

  it('does not latch: a factor that refused every job behind a busy thread lets one wait again, and learns from it', () => {
    // The pool's forecast for a job with one ahead, on one thread, of a 12 ms job (fib 30): 12 x the factor.
    const RUN = 12
    const rule = new QueueDelayRule({ targetMs: TARGET, intervalMs: INTERVAL }, 0)
    const c = new WaitCalibration(QUIET, 0)
    let t = 0
    // A slow stretch: the line's delay over the target, and the jobs admitted near it all waited past it.
    while (RUN * c.factorAt(t) <= TARGET) {
      t += 5
      rule.observe(TARGET * 2, t)
      c.waited(TARGET * 2, TARGET, TARGET, t)
    }
    expect(RUN * c.factorAt(t)).toBeGreaterThan(TARGET)
    expect(rule.standing).toBe(true)
    // The queue stands, and every job that finds the thread busy is refused: none is counted, and
    // the refusals' own samples keep it standing. Before the fade, that lasted as long as the load.
    const refusedUntil = (limit: number): number => {
      while (t < limit) {
        t += 5
        if (rule.admits(RUN * c.factorAt(t), t)) return t
      }
      return Number.POSITIVE_INFINITY
    }
    expect(refusedUntil(t + QUIET)).toBe(Number.POSITIVE_INFINITY)
    expect(rule.standing).toBe(true)
    // Then the factor fades, until the forecast of one job ahead is within the target again.
    const admittedAt = refusedUntil(t + 5 * QUIET)
    expect(admittedAt).toBeLessThan(Number.POSITIVE_INFINITY)
    // That job started on time: the factor learns it, and the next one is admitted too.
    c.waited(RUN, RUN * c.factorAt(admittedAt), TARGET, admittedAt)
    expect(rule.admits(RUN * c.factorAt(admittedAt + 1), admittedAt + 1)).toBe(true)
  })
})

describe('RetryStorm: refused clients that come straight back, on a fake clock', () => {
  const INTERVAL = 100
  /** One interval from `from`: `ran` jobs finished and `refused` refusals spread over it; the refusals' holds. */
  function interval (storm: RetryStorm, from: number, ran: number, refused: number, standing = true): number[] {
    const holds: number[] = []
    const events = ran + refused
    for (let i = 0; i < events; i++) {
      const at = from + (i * INTERVAL) / events
      if (i < ran) storm.ran(at)
      else holds.push(storm.refused(at, standing))
    }
    return holds
  }

  it('holds nothing while each interval refuses no more than the ratio allows: an open loop at twice the capacity', () => {
    const storm = new RetryStorm(INTERVAL, 0)
    for (let t = 0; t < 2000; t += INTERVAL) expect(interval(storm, t, 10, 10)).toEqual(Array(10).fill(0))
    expect(interval(storm, 2000, 10, RETRY_STORM_RATIO * 10)).toEqual(Array(RETRY_STORM_RATIO * 10).fill(0))
    expect(interval(storm, 2100, 10, 10)).toEqual(Array(10).fill(0))
  })

  it('does not take an interval in which a thread stalled, amid an open-loop overload, for a storm', () => {
    const storm = new RetryStorm(INTERVAL, 0)
    for (let t = 0; t < 1000; t += INTERVAL) interval(storm, t, 10, 10)
    expect(interval(storm, 1000, 0, 20)).toEqual(Array(20).fill(0)) // nothing finished, everything refused
    expect(interval(storm, 1100, 10, 10)).toEqual(Array(10).fill(0))
  })

  it('after an interval refusing past the ratio, holds each refusal for an interval while the queue stands', () => {
    const storm = new RetryStorm(INTERVAL, 0)
    // The storm's own interval is answered at once: it is recognised when it has been seen whole.
    expect(interval(storm, 0, 10, 400).every((h) => h === 0)).toBe(true)
    expect(interval(storm, 100, 10, 5)).toEqual(Array(5).fill(INTERVAL))
  })

  it('keeps holding while the queue stands, though the held refusals are now few', () => {
    const storm = new RetryStorm(INTERVAL, 0)
    interval(storm, 0, 10, 400)
    for (let t = 100; t < 1000; t += INTERVAL) expect(interval(storm, t, 10, 2)).toEqual([INTERVAL, INTERVAL])
  })

  it('stops holding STORM_HOLD_INTERVALS after the last storm-looking interval, though the queue stands; a storm that goes on shows again', () => {
    const storm = new RetryStorm(INTERVAL, 0)
    interval(storm, 0, 10, 400) // seen as the next interval begins, at 100
    const end = INTERVAL + STORM_HOLD_INTERVALS * INTERVAL
    for (let t = INTERVAL; t < end; t += INTERVAL) expect(interval(storm, t, 10, 2)).toEqual([INTERVAL, INTERVAL])
    // The hold is over: clients that come straight back again are held again within the first
    // tenth of an interval, a few of them answered at once first.
    const again = interval(storm, end, 10, 400)
    const atOnce = again.findIndex((h) => h === INTERVAL)
    expect(atOnce).toBeGreaterThan(0)
    expect(atOnce).toBeLessThanOrEqual(RETRY_STORM_RATIO * 10 / PROBE_PARTS + 1)
    expect(again.slice(atOnce).every((h) => h === INTERVAL)).toBe(true)
  })

  it('lets a hold end for good when what follows it is no storm: an open loop taken for one at its onset', () => {
    const storm = new RetryStorm(INTERVAL, 0)
    interval(storm, 0, 10, 400)
    const end = INTERVAL + STORM_HOLD_INTERVALS * INTERVAL
    for (let t = INTERVAL; t < end; t += INTERVAL) interval(storm, t, 10, 10)
    for (let t = end; t < end + 5 * INTERVAL; t += INTERVAL) {
      expect(interval(storm, t, 10, 10)).toEqual(Array(10).fill(0))
    }
  })

  it('counts refusals against what the threads can finish too: a backlog sent at once after a stall is not a storm', () => {
    // Threads that finish 10 jobs an interval when they run; a stall left them finishing 2 for a
    // while, and an open-loop client that fell behind sends its backlog in one interval.
    const storm = new RetryStorm(INTERVAL, 0, () => 10)
    for (let t = 0; t < 500; t += INTERVAL) interval(storm, t, 2, 5)
    expect(interval(storm, 500, 2, 6 * RETRY_STORM_RATIO).every((h) => h === 0)).toBe(true)
    expect(interval(storm, 600, 2, 5)).toEqual(Array(5).fill(0))
    // Past the ratio of what they can finish, it is one.
    expect(interval(storm, 700, 2, 11 * RETRY_STORM_RATIO).every((h) => h === 0)).toBe(true)
    expect(interval(storm, 800, 2, 5)).toEqual(Array(5).fill(INTERVAL))
  })

  it('stops holding once a refusal finds the queue no longer standing, until another storm is seen whole', () => {
    const storm = new RetryStorm(INTERVAL, 0)
    interval(storm, 0, 10, 400)
    expect(interval(storm, 100, 10, 1)).toEqual([INTERVAL])
    expect(storm.refused(205, false)).toBe(0)
    expect(storm.refused(210, true)).toBe(0) // standing again, but the interval before held no storm
    expect(interval(storm, 300, 10, 3)).toEqual([0, 0, 0])
  })

  it('does not take a storm followed by a quiet spell for a storm now', () => {
    const storm = new RetryStorm(INTERVAL, 0)
    interval(storm, 0, 0, 400)
    expect(storm.refused(350, true)).toBe(0)
  })

  it('counts a refusal with nothing finished against one finished job: a few refusals of an idle queue are not a storm', () => {
    const storm = new RetryStorm(INTERVAL, 0)
    interval(storm, 0, 0, RETRY_STORM_RATIO)
    expect(storm.refused(100, true)).toBe(0)
  })
})
