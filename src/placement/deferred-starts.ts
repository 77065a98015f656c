/**
 * Jobs a pool thread starts a turn of its event loop later than it read them, one per turn, in the
 * order they came (worker.ts says why a job waits so).
 *
 * Each waiting on its own turn, a job read while another waited could start first: it came in as
 * the thread's loop read its port, before the turn the other waited for. Under load a job was so
 * overtaken by several handed after it: logged by hand at twice a one-thread pool's capacity (with
 * one of the two cores taken by another process), 34 of 712 jobs started out of order, some after
 * waiting 80 ms for jobs admitted after them. Here a job that arrives while others wait waits
 * behind them, and only one starts per turn: a synchronous job has run its course, and its answer
 * has gone, before the next begins.
 */
export class DeferredStarts {
  readonly #waiting: Array<() => void> = []
  readonly #defer: (fn: () => void) => void
  /** Starts the oldest waiting job, and gives the next one, if any, the turn after. */
  readonly #startNext = (): void => {
    const next = this.#waiting.shift()
    if (this.#waiting.length > 0) this.#defer(this.#startNext)
    next?.()
  }

  /** `defer` runs a callback a turn later (setImmediate; a test passes its own). */
  constructor (defer: (fn: () => void) => void = (fn) => { setImmediate(fn) }) {
    this.#defer = defer
  }

  /** Jobs waiting for their turn. */
  get size (): number {
    return this.#waiting.length
  }

  /** Resolves when the job may start: a turn after the jobs waiting before it have. */
  async wait (): Promise<void> {
    await new Promise<void>((resolve) => {
      if (this.#waiting.push(resolve) === 1) this.#defer(this.#startNext)
    })
  }
}
