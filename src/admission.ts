import { errors } from './errors.js'

/**
 * Admission by queueing delay: a job is refused (503 OVERLOADED) when the work ahead of it has been
 * waiting too long, never because the server is merely busy. A loop that is 100% utilised and
 * still answers in a few milliseconds is healthy; a queue that stays long is not.
 *
 * The rule is CoDel's idea in the form Facebook's servers use it ("Fail at Scale", 2015): while
 * the queue has been empty at some moment in the last `intervalMs`, it is absorbing a burst and
 * a job may wait up to `intervalMs`; once it has stood non-empty for a whole interval, it is a
 * standing queue, and a job is admitted only while the oldest waiter has waited under `targetMs`.
 * Under sustained overload the queue then holds about `targetMs` of work: enough that the workers
 * never run dry (goodput stays at capacity), short enough that admitted jobs wait at most the
 * target plus one job's run.
 */
export interface DelayRuleOptions {
  /** Longest wait admitted while the queue stands (ms); 0 turns shedding off. */
  targetMs: number
  /** How long the queue must stand non-empty before the target applies; also the burst allowance (ms). */
  intervalMs: number
}

export class QueueDelayRule {
  readonly #targetMs: number
  readonly #intervalMs: number
  #lastEmptyAt: number

  constructor (options: DelayRuleOptions, now: number) {
    this.#targetMs = options.targetMs
    this.#intervalMs = options.intervalMs
    this.#lastEmptyAt = now
  }

  get enabled (): boolean {
    return this.#targetMs > 0
  }

  /** The queue was seen empty (or on time) at `now`. */
  empty (now: number): void {
    this.#lastEmptyAt = now
  }

  /** Whether a job may join a queue whose oldest waiter has waited `delayMs`, at `now`. */
  admits (delayMs: number, now: number): boolean {
    if (this.#targetMs <= 0 || delayMs <= this.#targetMs) return true
    const standing = now - this.#lastEmptyAt > this.#intervalMs
    return !standing && delayMs <= this.#intervalMs
  }

  /** The bound in force at `now`, for the refusal's message. */
  boundMs (now: number): number {
    return now - this.#lastEmptyAt > this.#intervalMs ? this.#targetMs : this.#intervalMs
  }
}

/** How often the loop's own ticker runs; its lateness is the loop's queueing delay. */
export const LOOP_TICK_MS = 5

/**
 * The event loop as a queue: what waits in it is every callback (a request, a reply from a pool
 * thread) behind the one running. A ticker fires every LOOP_TICK_MS; how far past its time the
 * loop is now is how long the newest work has waited for the loop, readable at any moment, even
 * in the middle of a long turn (that is what a request parsed late in that turn sees).
 */
export class LoopDelay {
  readonly #rule: QueueDelayRule
  readonly #clock: () => number
  #lastTick: number
  #timer: NodeJS.Timeout | undefined

  constructor (rule: QueueDelayRule, clock: () => number) {
    this.#rule = rule
    this.#clock = clock
    this.#lastTick = clock()
  }

  start (): void {
    if (!this.#rule.enabled || this.#timer !== undefined) return
    this.#timer = setInterval(() => this.tick(), LOOP_TICK_MS)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** The ticker's turn: late by under half the target, the loop counts as having caught up. */
  tick (): void {
    const now = this.#clock()
    const late = now - this.#lastTick - LOOP_TICK_MS
    this.#lastTick = now
    if (late < LOOP_TICK_MS) this.#rule.empty(now)
  }

  /** How long work arriving now has waited for the loop, in ms. */
  delayMs (now = this.#clock()): number {
    return Math.max(0, now - this.#lastTick - LOOP_TICK_MS)
  }

  /** OVERLOADED when work arriving now may not join the loop's queue; undefined when it may. */
  refusal (now = this.#clock()): Error | undefined {
    const delayMs = this.delayMs(now)
    if (this.#rule.admits(delayMs, now)) return undefined
    return new errors.OVERLOADED(`the event loop is ${Math.round(delayMs)} ms behind, over the ${this.#rule.boundMs(now)} ms allowed`)
  }
}
