/**
 * Jobs waiting for a pool thread, first in first out, each stamped with when it joined: the age
 * of the oldest is the pool's queueing delay, which admission reads (src/admission.ts).
 *
 * The pool hands Piscina no more jobs than it has threads and keeps the rest here, rather than in
 * Piscina's own queue: Piscina keeps jobs that can be aborted in an internal list that no option
 * exposes, and nothing there says how long a job has waited. With one job per thread at a time,
 * Piscina itself dispatches the next job only when a thread has answered, so waiting here costs
 * no more than waiting there.
 */
interface Waiter {
  readonly since: number
  readonly signal: { readonly aborted: boolean, readonly reason: unknown }
  readonly resolve: () => void
  readonly reject: (reason: unknown) => void
}

export class WaitingLine {
  #waiters: Array<Waiter | undefined> = []
  #head = 0

  /** Waiters in the line, those aborted while waiting included until they reach the head. */
  get size (): number {
    return this.#waiters.length - this.#head
  }

  /** How long the oldest waiter has waited at `now`, 0 when none waits. */
  oldestWaitMs (now: number): number {
    const oldest = this.#waiters[this.#head]
    return oldest === undefined ? 0 : now - oldest.since
  }

  /**
   * Resolves when `next()` lets this job through, or rejects with the signal's reason if it was
   * aborted meanwhile: it then never runs. An aborted waiter is not listened for (a listener per
   * waiting job would cost every job): whoever aborted it has answered its client already, and
   * it leaves the line when it reaches the head.
   */
  async wait (now: number, signal: Waiter['signal']): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#waiters.push({ since: now, signal, resolve, reject })
    })
  }

  /** Lets the oldest waiter that still wants to run through; false when none is left. */
  next (): boolean {
    while (this.#head < this.#waiters.length) {
      const waiter = this.#waiters[this.#head] as Waiter
      this.#waiters[this.#head++] = undefined
      if (waiter.signal.aborted) {
        waiter.reject(waiter.signal.reason)
        continue
      }
      this.#compact()
      waiter.resolve()
      return true
    }
    this.#compact()
    return false
  }

  #compact (): void {
    if (this.#head === this.#waiters.length) {
      this.#waiters = []
      this.#head = 0
    } else if (this.#head > 1024 && this.#head * 2 > this.#waiters.length) {
      this.#waiters = this.#waiters.slice(this.#head)
      this.#head = 0
    }
  }
}
