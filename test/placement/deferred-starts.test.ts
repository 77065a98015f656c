import { describe, expect, it } from 'vitest'
import { DeferredStarts } from '../../src/placement/deferred-starts.js'

/** A thread's turns, run by the test: each callback deferred is run by the next turn(). */
function fakeTurns (): { defer: (fn: () => void) => void, turn: () => Promise<void> } {
  let next: Array<() => void> = []
  return {
    defer: (fn) => { next.push(fn) },
    turn: async () => {
      const now = next
      next = []
      for (const fn of now) fn()
      await new Promise((resolve) => setImmediate(resolve)) // the jobs' continuations
    }
  }
}

describe('jobs a pool thread starts a turn later', () => {
  it('starts them one per turn, in the order they came, a job read meanwhile behind those waiting', async () => {
    const turns = fakeTurns()
    const starts = new DeferredStarts(turns.defer)
    const started: string[] = []
    const job = (name: string): Promise<void> => starts.wait().then(() => { started.push(name) })
    const b = job('b')
    const c = job('c') // read from the port before b's turn came
    expect(starts.size).toBe(2)
    await turns.turn()
    expect(started).toEqual(['b'])
    const d = job('d') // read while c waits
    await turns.turn()
    expect(started).toEqual(['b', 'c'])
    await turns.turn()
    expect(started).toEqual(['b', 'c', 'd'])
    await Promise.all([b, c, d])
    expect(starts.size).toBe(0)
  })

  it('gives a job that waits alone the next turn, and nothing after the last', async () => {
    const turns = fakeTurns()
    const starts = new DeferredStarts(turns.defer)
    let started = false
    const a = starts.wait().then(() => { started = true })
    expect(started).toBe(false)
    await turns.turn()
    await a
    expect(started).toBe(true)
    await turns.turn() // nothing was deferred: no error, nothing waits
    expect(starts.size).toBe(0)
  })

  it('with its default, setImmediate, starts every job in order', async () => {
    const starts = new DeferredStarts()
    const started: number[] = []
    await Promise.all(Array.from({ length: 20 }, async (_, i) => { await starts.wait(); started.push(i) }))
    expect(started).toEqual(Array.from({ length: 20 }, (_, i) => i))
  })
})
