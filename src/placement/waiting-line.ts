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
  admit: (() => void) | undefined
}

export class WaitingLine {
  #waiters: Waiter[] = []
  #head = 0
  #size = 0

  get size (): number {
    return this.#size
  }

  /** How long the oldest waiter has waited at `now`, 0 when none waits. */
  oldestWaitMs (now: number): number {
    this.#skipGone()
    const oldest = this.#waiters[this.#head]
    return oldest === undefined ? 0 : now - oldest.since
  }

  /**
   * Resolves when `next()` lets this job through; rejects with the signal's reason if it is
   * aborted first (the job then leaves the line and never runs).
   */
  async wait (now: number, signal: AbortSignal): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { since: now, admit: undefined }
      const onAbort = (): void => {
        if (waiter.admit === undefined) return
        waiter.admit = undefined
        this.#size--
        reject(signal.reason)
      }
      waiter.admit = () => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.#waiters.push(waiter)
      this.#size++
    })
  }

  /** Lets the oldest waiter through; false when none waits. */
  next (): boolean {
    this.#skipGone()
    const waiter = this.#waiters[this.#head]
    if (waiter === undefined) return false
    this.#waiters[this.#head++] = undefined as unknown as Waiter
    this.#size--
    const admit = waiter.admit as () => void
    waiter.admit = undefined
    this.#compact()
    admit()
    return true
  }

  /** Waiters that were aborted stay in the array until they reach the head. */
  #skipGone (): void {
    while (this.#head < this.#waiters.length && this.#waiters[this.#head]?.admit === undefined) this.#waiters[this.#head++] = undefined as unknown as Waiter
    this.#compact()
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
