import { describe, expect, it } from 'vitest'
import { AutoRule, MAX_AUTO_KEYS, ROUND_TRIP_WINDOW, SizeClasses, sizeClass } from '../../src/placement/auto-rule.js'
import { loadTasks } from '../../src/tasks/load.js'
import type { Crossing } from '../../src/placement/types.js'

// The rule on a made-up clock and made-up costs: `now` is passed in, nothing runs.
describe('CPU_JOBS=auto: the placement rule', () => {
  /** A crossing to a thread in use, of `roundTripMs` there and back. */
  const crossing = (roundTripMs: number, threadIdleMs = 0): Crossing => ({ handOffMs: roundTripMs / 2, threadIdleMs })

  /** A rule whose pool crossings have cost `roundTripMs` there and back. */
  const warmed = (roundTripMs = 0.2, options = {}): AutoRule => {
    const rule = new AutoRule({ exploreEveryMs: 0, inlineWarmUp: 0, ...options })
    rule.observe('warm-up', 'pool', 1, crossing(roundTripMs), 0)
    return rule
  }

  it('sends a task it has not measured to the pool first', () => {
    const rule = new AutoRule()
    expect(rule.decide('fib', 0)).toEqual({ via: 'pool', reason: 'unseen' })
    // Measured, but the pool's round trip is not known yet: still the pool.
    rule.observe('fib', 'inline', 0.01, undefined, 1)
    expect(rule.decide('fib', 2)).toEqual({ via: 'pool', reason: 'unseen' })
  })

  it('runs a task inline when it costs well under the round trip, on the pool when it does not', () => {
    const rule = warmed(0.2)
    rule.observe('cheap', 'pool', 0.01, crossing(0.2), 1)
    rule.observe('costly', 'pool', 7, crossing(0.2), 1)
    expect(rule.decide('cheap', 2)).toEqual({ via: 'inline', reason: 'cheap' })
    expect(rule.decide('costly', 2)).toEqual({ via: 'pool', reason: 'costly' })
    // The line is at half the round trip (0.1 ms).
    rule.observe('under', 'pool', 0.09, crossing(0.2), 1)
    rule.observe('over', 'pool', 0.11, crossing(0.2), 1)
    expect(rule.decide('under', 2).via).toBe('inline')
    expect(rule.decide('over', 2).via).toBe('pool')
  })

  it('keeps a task near the line on its side until its estimate is clearly past it', () => {
    // The line at half the round trip, 0.1 ms: inline again under 0.07 ms, on the pool from 0.13.
    const rule = warmed(0.2, { alpha: 1, band: 0.3 })
    rule.observe('near', 'pool', 0.09, crossing(0.2), 1)
    expect(rule.decide('near', 2)).toEqual({ via: 'inline', reason: 'cheap' })
    rule.observe('near', 'inline', 0.12, undefined, 3)
    expect(rule.decide('near', 4)).toEqual({ via: 'inline', reason: 'cheap' })
    rule.observe('near', 'inline', 0.14, undefined, 5)
    expect(rule.decide('near', 6)).toEqual({ via: 'pool', reason: 'costly' })
    rule.observe('near', 'pool', 0.08, crossing(0.2), 7)
    expect(rule.decide('near', 8)).toEqual({ via: 'pool', reason: 'costly' })
    rule.observe('near', 'pool', 0.06, crossing(0.2), 9)
    expect(rule.decide('near', 10)).toEqual({ via: 'inline', reason: 'cheap' })
    // Without the band, the line alone decides, both ways.
    const bare = warmed(0.2, { alpha: 1, band: 0 })
    bare.observe('near', 'pool', 0.09, crossing(0.2), 1)
    expect(bare.decide('near', 2).via).toBe('inline')
    bare.observe('near', 'inline', 0.11, undefined, 3)
    expect(bare.decide('near', 4).via).toBe('pool')
    bare.observe('near', 'pool', 0.09, crossing(0.2), 5)
    expect(bare.decide('near', 6).via).toBe('inline')
  })

  it('follows dearer crossings of a pool in use once they are most of the last ROUND_TRIP_WINDOW', () => {
    const rule = warmed(0.2)
    for (let t = 1; t < ROUND_TRIP_WINDOW; t++) rule.observe('mid', 'pool', 2, crossing(0.2), t)
    expect(rule.decide('mid', 20).via).toBe('pool')
    // A crossing to a thread left idle for 500 ms (an explored job's, a pool nobody used) is no
    // sample: its wake-up is not what the jobs of a pool in use pay.
    rule.observe('other', 'pool', 1, crossing(20, 500), 21)
    expect(rule.roundTripMs).toBe(0.2)
    // Crossings of a pool in use now take 20 ms there and back: the estimate stays until they are
    // the middle of the window, then is theirs.
    const half = (ROUND_TRIP_WINDOW - 1) / 2
    for (let t = 0; t < half; t++) rule.observe('other', 'pool', 1, crossing(20), 22 + t)
    expect(rule.roundTripMs).toBe(0.2)
    rule.observe('other', 'pool', 1, crossing(20), 40)
    expect(rule.roundTripMs).toBe(20)
    // A 2 ms task is cheap beside that.
    expect(rule.decide('mid', 41)).toEqual({ via: 'inline', reason: 'cheap' })
  })

  it('is not moved by a few crossings far dearer than the rest (a thread that waited for a core)', () => {
    const rule = warmed(0.2)
    for (let t = 1; t < ROUND_TRIP_WINDOW; t++) rule.crossed(t % 2 === 0 ? 0.1 : 0.12)
    expect(rule.roundTripMs).toBe(0.2)
    for (let i = 0; i < 4; i++) rule.crossed(2)
    expect(rule.roundTripMs).toBe(0.24)
    rule.observe('half-ms', 'pool', 0.5, crossing(0.2), 1)
    expect(rule.decide('half-ms', 2)).toEqual({ via: 'pool', reason: 'costly' })
  })

  it('takes the lowest of its first crossings: a thread still starting is not the crossing', () => {
    const rule = new AutoRule()
    rule.crossed(40) // the start-up's first probe, its thread starting
    expect(rule.roundTripMs).toBe(80)
    rule.crossed(0.1)
    expect(rule.roundTripMs).toBe(0.2)
  })

  it('keeps cheap tasks off a late loop', () => {
    const rule = warmed(0.2)
    rule.observe('cheap', 'pool', 0.01, crossing(0.2), 1)
    expect(rule.decide('cheap', 2, 25)).toEqual({ via: 'pool', reason: 'loop-late' })
    expect(rule.decide('cheap', 3, 2)).toEqual({ via: 'inline', reason: 'cheap' })
  })

  it('sends a task to the pool after a strike, until the strike decays and its estimate is cheap again', () => {
    const rule = warmed(0.2, { strikeDecayMs: 5000 })
    rule.observe('shifty', 'pool', 0.01, crossing(0.2), 0)
    expect(rule.decide('shifty', 1).via).toBe('inline')
    // Two inline runs in a row of 5 ms against an estimate of 0.01 ms: a strike.
    rule.observe('shifty', 'inline', 5, undefined, 10)
    expect(rule.decide('shifty', 10).via).toBe('inline') // one slow run may be a garbage collection
    rule.observe('shifty', 'inline', 5, undefined, 10)
    expect(rule.decide('shifty', 11)).toEqual({ via: 'pool', reason: 'strike' })
    // On the pool it is cheap again; the strike holds until 5 s after it.
    for (let t = 12; t < 40; t++) rule.observe('shifty', 'pool', 0.01, crossing(0.2), t)
    expect(rule.decide('shifty', 5009)).toEqual({ via: 'pool', reason: 'strike' })
    expect(rule.decide('shifty', 5011)).toEqual({ via: 'inline', reason: 'cheap' })
  })

  it('follows a cost that really changed: a strike, then the estimate in charge, back inline once cheap again', () => {
    const rule = warmed(0.2, { strikeDecayMs: 5000 })
    rule.observe('shift', 'pool', 0.02, crossing(0.2), 0)
    expect(rule.decide('shift', 1).via).toBe('inline')
    rule.observe('shift', 'inline', 2, undefined, 10)
    rule.observe('shift', 'inline', 2, undefined, 10)
    expect(rule.decide('shift', 11)).toEqual({ via: 'pool', reason: 'strike' })
    // Its pool runs cost 2 ms too: a few of them and the estimate says costly on its own.
    let t = 12
    while (rule.decide('shift', t).reason === 'strike') rule.observe('shift', 'pool', 2, crossing(0.2), t++)
    expect(t).toBeLessThan(20)
    expect(rule.decide('shift', t)).toEqual({ via: 'pool', reason: 'costly' })
    expect(rule.tasks().get('shift')?.strikeAt).toBeUndefined()
    // Cheap again, long before the strike would have decayed: back inline within a few dozen pool runs.
    const from = t
    while (rule.decide('shift', t).via === 'pool') rule.observe('shift', 'pool', 0.02, crossing(0.2), t++)
    expect(t - from).toBeLessThan(40)
    expect(t).toBeLessThan(5000)
    expect(rule.decide('shift', t)).toEqual({ via: 'inline', reason: 'cheap' })
  })

  it('is not struck by its first inline runs, which run code the loop has not compiled yet', () => {
    const rule = warmed(0.2, { inlineWarmUp: 2 })
    rule.observe('cold', 'pool', 0.01, crossing(0.2), 0)
    rule.observe('cold', 'inline', 3, undefined, 1)
    rule.observe('cold', 'inline', 3, undefined, 2)
    expect(rule.tasks().get('cold')?.strikeAt).toBeUndefined()
    for (let t = 3; t < 30; t++) rule.observe('cold', 'inline', 0.01, undefined, t)
    rule.observe('cold', 'inline', 3, undefined, 30) // past the warm-up, but one slow run alone
    expect(rule.tasks().get('cold')?.strikeAt).toBeUndefined()
    rule.observe('cold', 'inline', 3, undefined, 31) // two in a row: a strike
    expect(rule.tasks().get('cold')?.strikeAt).toBe(31)
  })

  it('is not struck by a slow run of a task that is costly anyway, nor by one under the floor', () => {
    const rule = warmed(0.2, { strikeFloorMs: 1 })
    rule.observe('tiny', 'pool', 0.001, crossing(0.199), 0)
    rule.observe('tiny', 'inline', 0.5, undefined, 1) // 500x its estimate, but under 1 ms
    expect(rule.tasks().get('tiny')?.strikeAt).toBeUndefined()
  })

  it('explores the other placement at most once per exploreEveryMs, and only where both are open', () => {
    const rule = warmed(0.2, { exploreEveryMs: 500 })
    rule.observe('cheap', 'pool', 0.01, crossing(0.2), 0)
    // A job every 10 ms for 1.2 s: the first explores 500 ms after the task's first job, then every 500 ms.
    const vias = Array.from({ length: 120 }, (_, i) => rule.decide('cheap', i * 10))
    expect(vias.filter((d) => d.reason === 'explore')).toEqual([{ via: 'pool', reason: 'explore' }, { via: 'pool', reason: 'explore' }])
    expect(vias.filter((d) => d.via === 'inline')).toHaveLength(118)
    // While the loop is late, nothing explores onto it.
    const late = Array.from({ length: 120 }, (_, i) => rule.decide('cheap', 2000 + i * 10, 50))
    expect(late.every((d) => d.via === 'pool' && d.reason === 'loop-late')).toBe(true)
  })

  it('explores inline only a costly task near the line: a far costlier one would only block the loop', () => {
    const rule = warmed(0.2, { exploreEveryMs: 500 })
    rule.observe('near', 'pool', 0.15, crossing(0.2), 0) // 1.5x the line (0.1 ms): could be cheaper inline
    rule.observe('far', 'pool', 8, crossing(0.2), 0) // 80x the line
    const near = Array.from({ length: 120 }, (_, i) => rule.decide('near', i * 10))
    const far = Array.from({ length: 120 }, (_, i) => rule.decide('far', i * 10))
    expect(near.filter((d) => d.reason === 'explore').map((d) => d.via)).toEqual(['inline', 'inline'])
    expect(far.every((d) => d.via === 'pool' && d.reason === 'costly')).toBe(true)
  })

  it('keeps what /tasks and /metrics show: estimate, placement, reason, jobs', () => {
    const rule = warmed(0.2)
    rule.observe('cheap', 'pool', 0.01, crossing(0.2), 0)
    rule.decide('cheap', 1)
    expect(rule.tasks().get('cheap')).toMatchObject({ runMs: 0.01, placement: 'inline', reason: 'cheap', jobs: 1 })
  })
})

describe('CPU_JOBS=auto: size classes', () => {
  it('keys a job by its task and the quarter-octave class of each number in its input', () => {
    expect(sizeClass('fib', { n: 30 })).toBe('fib[n~20]')
    expect(sizeClass('fib', { n: 29 })).toBe('fib[n~20]')
    expect(sizeClass('fib', { n: 1 })).toBe('fib[n~4]')
    expect(sizeClass('hash', { rounds: 10, bytes: 64 })).toBe('hash[bytes~24,rounds~14]')
    expect(sizeClass('json', {})).toBe('json')
    expect(sizeClass('x', 'not an object')).toBe('x')
  })

  const spin = { name: 'spin', schema: { properties: { ms: { type: 'number' } } } }

  it('keeps at most MAX_AUTO_KEYS estimates: past them a new class shares its task\'s own', () => {
    const rule = new AutoRule()
    for (let i = 0; rule.tasks().size < MAX_AUTO_KEYS - 1 && i < 4 * MAX_AUTO_KEYS; i++) {
      rule.decide(rule.keyOf(spin, { ms: 2 ** (i / 4) }), 0)
    }
    expect(rule.tasks().size).toBe(MAX_AUTO_KEYS - 1)
    expect(rule.keyOf(spin, { ms: 2 ** 70 })).toBe('spin')
    expect(rule.keyOf(spin, { ms: 1 })).toBe('spin[ms~4]') // already kept
  })

  it('finds the same key as the definition for every catalogue task, from the fields its schema says are numbers', async () => {
    const tasks = await loadTasks({ faults: true })
    // Values over every range the catalogue's schemas admit, in inputs with every field, with the
    // first left out, and with none.
    const values = [0, 1, 2, 3, 25, 29, 30, 35, 0.02, 0.05, 1.5, 1000, 65_536, 4_194_304, 1.7e12, 9e12]
    let compared = 0
    for (const task of tasks.values()) {
      const classes = new SizeClasses(task)
      const fields = Object.entries(task.schema.properties)
      const numeric = (s: object): boolean => ['number', 'integer'].includes((s as { type?: string }).type ?? '')
      for (const [i, value] of values.entries()) {
        // Each number its own value, so that swapping two fields' values gives another key; a
        // field of another type a string, as its schema would have it.
        const input = Object.fromEntries(fields.map(([f, s], k) => [f, numeric(s) ? values[(i + 3 * k) % values.length] : 'x']))
        const without = Object.fromEntries(fields.slice(1).map(([f, s]) => [f, numeric(s) ? value : 'x']))
        for (const x of [input, without, {}]) {
          expect(classes.keyOf(x)).toBe(sizeClass(task.name, x))
          expect(classes.keyOf(x)).toBe(sizeClass(task.name, x)) // found, not built, the second time
          compared++
        }
      }
    }
    expect(compared).toBeGreaterThan(3 * values.length * 7)
    expect(new SizeClasses(spin).keyOf('not an object')).toBe('spin')
  })

  it('tells apart inputs whose numbers trade places, and a task with more than four numbers', () => {
    const phased = { name: 'phased', schema: { properties: { from: { type: 'number' }, to: { type: 'integer' }, label: { type: 'string' } } } }
    const classes = new SizeClasses(phased)
    expect(classes.keyOf({ from: 1, to: 100, label: 'x' })).toBe('phased[from~4,to~27]')
    expect(classes.keyOf({ from: 100, to: 1, label: 'x' })).toBe('phased[from~27,to~4]')
    expect(classes.keyOf({ to: 100, from: 1 })).toBe('phased[from~4,to~27]')
    const properties = Object.fromEntries(['a', 'b', 'c', 'd', 'e'].map((f) => [f, { type: 'integer' }]))
    const five = new SizeClasses({ name: 'five', schema: { properties } })
    expect(five.keyOf({ a: 1, b: 2, c: 3, d: 4, e: 5 })).toBe('five[a~4,b~6,c~8,d~9,e~10]')
    expect(five.keyOf({ a: 5, b: 2, c: 3, d: 4, e: 1 })).toBe('five[a~10,b~6,c~8,d~9,e~4]')
  })
})
