import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import type { PoolReply } from '../../src/placement/messages.js'
import { Recalls } from '../../src/placement/recalls.js'
import { CANCELLED, begin, Tickets } from '../../src/placement/tickets.js'

/** A thread's answer to come, settled by the test. */
function attempt (): { promise: Promise<PoolReply>, answer: (reply: PoolReply) => void } {
  let answer: (reply: PoolReply) => void = () => {}
  const promise = new Promise<PoolReply>((resolve) => { answer = resolve })
  return { promise, answer }
}

const SKIPPED: PoolReply = { ok: false, skipped: true }
const ANSWER: PoolReply = { ok: true, result: 1, startedAt: 0, runMs: 0, threadId: 7, idleMs: 0 }
const THREAD = 7

describe('recalling a job handed to a busy thread', () => {
  let recalls: Recalls | undefined
  afterEach(() => recalls?.close())

  it('recalls a job not begun in time, and gives its cell back only when its thread has skipped it', async () => {
    const tickets = new Tickets(2)
    recalls = new Recalls(tickets, () => 1, 2)
    const slot = tickets.take()
    const first = attempt()
    const watched = recalls.watch(slot, first.promise)
    expect(await watched).toBeUndefined() // recalled
    expect(tickets.state(slot)).toBe(CANCELLED)
    tickets.take() // the job handed again, in the other cell
    expect(() => tickets.take()).toThrow(/no free ticket/) // the recalled one is still held
    first.answer(SKIPPED) // its thread reaches it, and skips it
    await sleep(0)
    expect(tickets.take()).toBe(slot)
  })

  it('answers a job that began in time with its thread\'s reply', async () => {
    const tickets = new Tickets(1)
    recalls = new Recalls(tickets, () => 5, 1)
    const slot = tickets.take()
    const run = attempt()
    const watched = recalls.watch(slot, run.promise)
    expect(begin(tickets.cells, slot, THREAD)).toBe(true)
    await sleep(20) // well past the 5 ms
    run.answer(ANSWER)
    expect(await watched).toBe(ANSWER)
  })

  it('holds no more recalled cells than it is allowed: the next recall waits for a skip', async () => {
    const tickets = new Tickets(4)
    recalls = new Recalls(tickets, () => 1, 1)
    const a = attempt()
    const b = attempt()
    const slotA = tickets.take()
    const slotB = tickets.take()
    const watchedA = recalls.watch(slotA, a.promise)
    let bSettled = false
    const watchedB = recalls.watch(slotB, b.promise).finally(() => { bSettled = true })
    expect(await watchedA).toBeUndefined()
    await sleep(20)
    expect(bSettled).toBe(false) // due, but one recalled cell is held already
    a.answer(SKIPPED)
    expect(await watchedB).toBeUndefined()
    b.answer(SKIPPED)
  })
})
