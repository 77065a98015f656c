import { errors } from './errors.js'

/**
 * Admission by queueing delay: a job is refused (503 OVERLOADED) when the work ahead of it has been
 * waiting too long, never because the server is merely busy. A loop that is 100% utilised and
 * still answers in a few milliseconds is healthy; a queue that stays long is not.
 *
 * The rule is CoDel's (Nichols and Jacobson, 2012), applied at admission as Facebook's servers do
 * ("Fail at Scale", 2015): the queueing delay is sampled (the age of the oldest waiting job, or
 * how far behind the event loop is); while it has been above `targetMs` for less than
 * `intervalMs`, the queue is absorbing a burst and a job may wait up to `intervalMs`; once it has
 * stayed above the target for a whole interval, the queue is standing, and a job is admitted only
 * while the delay is under the target. The queue stands until the delay has stayed at or under
 * the target for a whole interval in turn: one quick moment (a turn of the loop spent refusing)
 * does not reopen the burst allowance while the overload goes on. Under sustained overload the
 * queue then holds about `targetMs` of work: enough that the workers never run dry (goodput stays
 * at capacity), short enough that admitted jobs wait at most the target plus one job's run.
 */
export interface DelayRuleOptions {
  /** Longest wait admitted while the queue stands (ms); 0 turns shedding off. */
  targetMs: number
  /** How long the delay must stay above (or under) the target to change state; also the burst allowance (ms). */
  intervalMs: number
}

export class QueueDelayRule {
  readonly #targetMs: number
  readonly #intervalMs: number
  #standing = false
  /** Since when the samples have been above the target, or under it; undefined when the last one was not. */
  #aboveSince: number | undefined
  #underSince: number | undefined

  constructor (options: DelayRuleOptions, now: number) {
    this.#targetMs = options.targetMs
    this.#intervalMs = options.intervalMs
    this.#underSince = now
  }

  get enabled (): boolean {
    return this.#targetMs > 0
  }

  get standing (): boolean {
    return this.#standing
  }

  get targetMs (): number {
    return this.#targetMs
  }

  /** A sample of the queueing delay at `now` (ignored when shedding is off). */
  observe (delayMs: number, now: number): void {
    if (this.#targetMs <= 0) return
    if (delayMs > this.#targetMs) {
      this.#underSince = undefined
      this.#aboveSince ??= now
      if (now - this.#aboveSince >= this.#intervalMs) this.#standing = true
    } else {
      this.#aboveSince = undefined
      this.#underSince ??= now
      if (now - this.#underSince >= this.#intervalMs) this.#standing = false
    }
  }

  /** Whether a job may join a queue whose oldest waiter has waited `delayMs`, at `now` (itself a sample). */
  admits (delayMs: number, now: number): boolean {
    if (this.#targetMs <= 0) return true
    this.observe(delayMs, now)
    return delayMs <= this.boundMs()
  }

  /** The longest wait admitted now. */
  boundMs (): number {
    return this.#standing ? this.#targetMs : this.#intervalMs
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

  /**
   * Starts the ticker, counting from now: the time before (the process starting up) is not work
   * waiting for the loop. A rule whose target is 0 sheds nothing, and the delay is still measured.
   */
  start (): void {
    if (this.#timer !== undefined) return
    this.#lastTick = this.#clock()
    this.#timer = setInterval(() => this.tick(), LOOP_TICK_MS)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** The ticker's turn: how late it fires is a sample of the loop's delay. */
  tick (): void {
    const now = this.#clock()
    this.#rule.observe(Math.max(0, now - this.#lastTick - LOOP_TICK_MS), now)
    this.#lastTick = now
  }

  /** How long work arriving now has waited for the loop, in ms. */
  delayMs (now = this.#clock()): number {
    return Math.max(0, now - this.#lastTick - LOOP_TICK_MS)
  }

  /**
   * OVERLOADED when work arriving now may not join the loop's queue; undefined when it may. A delay
   * read here over the target is a sample; one under it is not: within a turn the delay counts up
   * from the tick that began it, so the first jobs of every turn would read as "caught up" while
   * the loop is in fact behind. Whether it has caught up is the ticker's to say.
   */
  refusal (now = this.#clock()): Error | undefined {
    if (!this.#rule.enabled) return undefined
    const delayMs = this.delayMs(now)
    if (delayMs > this.#rule.targetMs) this.#rule.observe(delayMs, now)
    if (delayMs <= this.#rule.boundMs()) return undefined
    return new errors.OVERLOADED(`the event loop is ${Math.round(delayMs)} ms behind, over the ${this.#rule.boundMs()} ms allowed`)
  }
}
