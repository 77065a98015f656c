/**
 * Where each CPU job handed to the pool stands, in memory the event loop and the pool threads
 * share: one 32-bit cell per job handed and not yet settled, changed only by atomic
 * compare-and-exchange, so that a job is started or stopped, never both.
 *
 * Why: a pool thread that is handed its next job while it still runs the one before (the pool
 * hands two at a time, ThreadPool says when) starts it without waiting on the event loop. But a
 * job handed that way sits in the thread's port, out of Piscina's reach: Piscina can only stop a
 * job by terminating its thread, which would take the job running there with it. The cell says
 * instead whether a job may still begin (HANDED), has been told not to (CANCELLED), runs (the id of
 * its thread) or is over (DONE). A job that had not begun when its thread died, or that a thread
 * the pool terminated for another job's sake took with it, is handed again (ThreadPool.#runCpu).
 */

/** Handed to a thread, not begun. */
export const HANDED = 0
/** Aborted before it began: its thread skips it. */
export const CANCELLED = -1
/** Ended (its answer is on its way). */
export const DONE = -2

/**
 * The thread's side: true if the job at `slot` may begin, now marked as running on `threadId`;
 * false if it was cancelled before it began.
 */
export function begin (cells: Int32Array, slot: number, threadId: number): boolean {
  return Atomics.compareExchange(cells, slot, HANDED, threadId) === HANDED
}

/** The thread's side: the job at `slot` has ended. */
export function end (cells: Int32Array, slot: number): void {
  Atomics.store(cells, slot, DONE)
}

/** The event loop's side: a cell per job handed to the pool, taken when it is handed and given back when it settles. */
export class Tickets {
  readonly cells: Int32Array
  readonly #free: number[]

  constructor (size: number) {
    this.cells = new Int32Array(new SharedArrayBuffer(size * Int32Array.BYTES_PER_ELEMENT))
    this.#free = Array.from({ length: size }, (_, i) => size - 1 - i)
  }

  /** A cell for a job about to be handed, marked HANDED. There is one: the pool hands no more jobs than cells. */
  take (): number {
    const slot = this.#free.pop()
    if (slot === undefined) throw new Error('no free ticket: a cell was not given back')
    this.hand(slot)
    return slot
  }

  give (slot: number): void {
    this.#free.push(slot)
  }

  /** Marks the job at `slot` as handed: when it is taken, and again when its thread died before it ended. */
  hand (slot: number): void {
    Atomics.store(this.cells, slot, HANDED)
  }

  /** The job's state: HANDED, CANCELLED, DONE, or the id of the thread running it. */
  state (slot: number): number {
    return Atomics.load(this.cells, slot)
  }

  /** Tells a job not to begin: true if it had not begun (its thread skips it), false if it runs or has ended. */
  cancel (slot: number): boolean {
    return Atomics.compareExchange(this.cells, slot, HANDED, CANCELLED) === HANDED
  }
}
