import { errors } from './errors.js'

/**
 * Admission by queueing delay: a job is refused (503 OVERLOADED) when the work ahead of it has been
 * waiting too long, never because the server is merely busy. A loop that is 100% utilised and
 * still answers in a few milliseconds is healthy; a queue that stays long is not.
 *
 * The rule is CoDel's (Nichols and Jacobson, 2012), applied at admission as Facebook's servers do
 * ("Fail at Scale", 2015): the queueing delay is sampled (for the pool's line, how long a job
 * would wait there, src/placement/pool.ts; for the event loop, how far behind it is); while it has
 * been above `targetMs` for less than `intervalMs`, the queue is absorbing a burst and a job may
 * wait up to `intervalMs`; once it has
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

  get intervalMs (): number {
    return this.#intervalMs
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

/** The share of jobs admitted to a line that may wait there past the target (WaitCalibration). */
export const LATE_SHARE = 0.01
/** How far one job that waited past the target raises the calibration's factor. */
const LATE_STEP = 0.1
/** The calibration never counts a forecast for more than this many times itself. */
const CALIBRATION_MAX = 5
/** Intervals without a job to learn from after which the calibration fades, its excess halved as often again. */
export const CALIBRATION_QUIET_INTERVALS = 10

/**
 * A forecast of a job's wait is the average run of the jobs ahead of it; what the job waits is
 * their actual runs, and each of those is longer whenever the machine takes the thread away (on a
 * shared 2-core machine, a 5 ms job's run has a p99 of 20-40 ms under load). A line held at a
 * forecast of the target then lets a good share of its jobs wait well past it: at twice the
 * sustainable rate of `spin` 5 ms jobs, a p99 wait of 79-85 ms against a target of 50.
 *
 * So admission reads the forecast through a factor learned from what the jobs it admitted then
 * waited, the way one tracks a quantile of a stream: each job that waited past the target raises
 * the factor by a step, each that did not lowers it by a step LATE_SHARE / (1 - LATE_SHARE) as
 * large, and the factor settles where LATE_SHARE of the jobs wait past the target.
 *
 * Only jobs admitted on a forecast of at least half the target count: those are the ones the
 * forecast let in near its bound. A job admitted to a line forecast at microseconds that then
 * waited 60 ms (the machine stalled the process) says nothing a factor could correct; counted, it
 * would make a mixed line refuse costly jobs for a stall. A line whose jobs start on time keeps the
 * factor at 1, the forecast as it is; so does every load that never fills the line to half the
 * target. The same run with it: p99 wait 42-48 ms, as many jobs admitted (docs/performance.md).
 *
 * What it learned fades once nothing teaches it: after `quietMs` without a job that counts, the
 * factor's excess over 1 halves every `quietMs`. Without that it latches. Once it counts one job's
 * run for more than the target (fib 30 at 12 ms and a factor over 4.2, against 50 ms), no job
 * that finds the threads busy is admitted while the queue stands, so none is counted, and the
 * factor stays where it is however promptly jobs would now start, for as long as the load lasts
 * and after it: a load that came an hour later would start with the line held short. While jobs
 * are counted, only what they waited moves it.
 */
export class WaitCalibration {
  readonly #quietMs: number
  #factor = 1
  /** When a job last counted: the fade starts `quietMs` after it. */
  #learnedAt: number

  /** `quietMs`: how long without a job that counts before the factor fades (CALIBRATION_QUIET_INTERVALS intervals). */
  constructor (quietMs: number, now: number) {
    this.#quietMs = quietMs
    this.#learnedAt = now
  }

  /** How many times itself a forecast counts for at `now`: 1 while jobs start on time. */
  factorAt (now: number): number {
    const fading = now - this.#learnedAt - this.#quietMs
    if (fading <= 0 || this.#factor === 1) return this.#factor
    return 1 + (this.#factor - 1) * 2 ** (-fading / this.#quietMs)
  }

  /**
   * A job that waited in the line has started, `waitedMs` after it arrived, and is told at `now`;
   * it was admitted on a forecast (the factor applied) of `forecastMs`, and the line's target is
   * `targetMs`.
   */
  waited (waitedMs: number, forecastMs: number, targetMs: number, now: number): void {
    if (targetMs <= 0 || forecastMs < targetMs / 2) return
    const factor = this.factorAt(now) + (waitedMs > targetMs ? LATE_STEP : -LATE_STEP * LATE_SHARE / (1 - LATE_SHARE))
    this.#factor = Math.min(CALIBRATION_MAX, Math.max(1, factor))
    this.#learnedAt = now
  }
}

/** Refused jobs per job finished, over one interval, past which the refused are taken to come straight back. */
export const RETRY_STORM_RATIO = 8
/** How many intervals refusals stay held after the last one that looked like a storm. */
export const STORM_HOLD_INTERVALS = 10
/** After a hold, a storm that goes on is looked for over the first 1/PROBE_PARTS of an interval. */
export const PROBE_PARTS = 10

/**
 * Refusing only works on clients that go away when refused. A closed-loop client that sends the
 * refused job again at once (autocannon, most load tests, a naive retry loop) does not: each
 * refusal is answered in a fraction of a millisecond and comes straight back, so a standing queue
 * turns into thousands of refusals a second, and the event loops answering them take the cores
 * the pool threads compute on (docs/performance.md, "Clients that come straight back", has the
 * figures).
 *
 * Such a storm is recognised by its ratio: over an interval, more than RETRY_STORM_RATIO jobs
 * refused for each job the pool finishes in an interval, or can finish at its jobs' current run
 * time (`finishable`), whichever is more. What it finished is a moving average, so that one
 * interval in which a thread stalled does not make an ordinary overload look like a storm; what
 * it can finish does not fall at all in such an interval, nor at the onset of a load, when the
 * jobs finished are still few and an open-loop client that fell behind sends its backlog at once.
 * An open-loop overload refuses what is offered beyond capacity: twice the capacity refuses about
 * one job per job finished. A storm refuses at the speed of a round trip, tens per job finished.
 *
 * From then on, each refusal is held for one interval before it is answered: a client that comes
 * straight back does so about once per interval, not once per round trip. The refusal is the same
 * 503 with Retry-After, only later; nothing admitted waits longer for it. While the refusals are
 * held a storm no longer shows in their ratio, so the hold lasts STORM_HOLD_INTERVALS intervals
 * after the last interval that showed one, and ends sooner if the queue stops standing: an
 * interval taken for a storm by mistake costs the refusals of at most that long an extra interval
 * each. A storm that goes on shows again as soon as the hold ends, its clients all coming back at
 * once: more than the ratio allows within the first 1/PROBE_PARTS of an interval holds them again,
 * rather than after a whole interval at the storm's own speed (docs/performance.md has the runs).
 * A closed loop of a few connections stays under the ratio; the HTTP layer holds its refusals one
 * connection at a time (refusalHoldMs, src/http/hooks.ts).
 */
export class RetryStorm {
  readonly #intervalMs: number
  readonly #finishable: () => number
  #windowStart: number
  #ran = 0
  #refused = 0
  /** Jobs finished per interval: a moving average over the intervals so far (undefined before the first). */
  #ranPerInterval: number | undefined
  /** Refusals are held until then. */
  #holdUntil = Number.NEGATIVE_INFINITY
  /** Refusals since the last hold ended. */
  #probed = 0

  /** `finishable` says how many jobs the pool's threads can finish in an interval now (0 when it does not know yet). */
  constructor (intervalMs: number, now: number, finishable: () => number = () => 0) {
    this.#intervalMs = intervalMs
    this.#windowStart = now
    this.#finishable = finishable
  }

  /** A job the pool finished at `now`. */
  ran (now: number): void {
    this.#roll(now)
    this.#ran++
  }

  /** A job refused at `now` by a queue that is `standing` or not: how long to hold its answer, in ms. */
  refused (now: number, standing: boolean): number {
    this.#roll(now)
    this.#refused++
    if (!standing) {
      this.#holdUntil = Number.NEGATIVE_INFINITY
      return 0
    }
    if (now < this.#holdUntil) return this.#intervalMs
    // The hold is over. A storm that goes on comes straight back at once: past the ratio within
    // the first tenth of an interval, it is held again without a whole interval at its own speed.
    if (now - this.#holdUntil < this.#intervalMs / PROBE_PARTS) {
      this.#probed++
      if (this.#probed > RETRY_STORM_RATIO * this.#perInterval() / PROBE_PARTS) {
        this.#hold(now)
        return this.#intervalMs
      }
    }
    return 0
  }

  /** Jobs the pool finishes, or can finish, in an interval: what refusals are counted against. */
  #perInterval (): number {
    return Math.max(1, this.#ranPerInterval ?? 0, this.#finishable())
  }

  #hold (now: number): void {
    this.#holdUntil = now + STORM_HOLD_INTERVALS * this.#intervalMs
    this.#probed = 0
  }

  #roll (now: number): void {
    const elapsed = now - this.#windowStart
    if (elapsed < this.#intervalMs) return
    // An interval followed by a quiet one says nothing about now.
    const quietSince = elapsed >= 2 * this.#intervalMs
    const before = quietSince ? undefined : this.#ranPerInterval
    this.#ranPerInterval = before === undefined ? this.#ran : (before + this.#ran) / 2
    if (!quietSince && this.#refused > RETRY_STORM_RATIO * this.#perInterval()) this.#hold(now)
    this.#windowStart = now
    this.#ran = 0
    this.#refused = 0
  }
}

/** A refusal must free at least this many times what it costs the loop before the loop refuses at all. */
export const REFUSAL_PAYOFF = 2
/** Fewer requests read than this in an interval, and it says nothing of what a request costs. */
const PAYOFF_MIN_READS = 20

/**
 * Whether refusing work frees the event loop at all. Every request costs the loop `o` (read,
 * routed, answered) and its job `j` more (the inline run; an I/O or pool job's start is part of
 * `o`); a refusal costs about `o` and frees `j`. At twice the loop's capacity, refusing all it
 * cannot serve leaves a goodput of `(j - o) / j`: none when `j` is `o`, and a refusal that costs
 * more than the work it refuses keeps the loop behind and refusing, however long the overload
 * lasts (docs/performance.md, "Where a refusal's time goes", has the runs). Trivial jobs, or jobs
 * that run on the pool, are not worth refusing on the loop: it serves them, and the clients'
 * connections bound the wait.
 *
 * Measured online over each interval: the loop's active time (its utilisation, from Node), the
 * inline jobs' run time, the requests read and those admitted. `o` is the active time not spent in
 * inline jobs per request read, `j` the inline time per request admitted, each an average of the
 * intervals so far (halved each interval). The loop refuses only while `j >= REFUSAL_PAYOFF * o`:
 * a refusal frees at least twice its cost, and shedding at twice the capacity keeps at least half of
 * it. Until an interval has read enough requests to tell, it refuses as the rule says.
 */
export class RefusalPayoff {
  readonly #intervalMs: number
  readonly #activeMs: () => number
  #windowStart: number
  #activeAtStart: number
  #reads = 0
  #refused = 0
  #inlineMs = 0
  /** Loop ms per request read, and inline ms per request admitted: undefined until measured. */
  #perRequestMs: number | undefined
  #perJobMs: number | undefined

  /** `activeMs`: the loop's active time so far, in ms (performance.eventLoopUtilization().active). */
  constructor (intervalMs: number, now: number, activeMs: () => number) {
    this.#intervalMs = intervalMs
    this.#activeMs = activeMs
    this.#windowStart = now
    this.#activeAtStart = activeMs()
  }

  /** A request read and checked at admission; `refused` if it was turned away. */
  read (refused: boolean): void {
    this.#reads++
    if (refused) this.#refused++
  }

  /** A job that was refused after its request was read (an inline job checked again as it is about to run). */
  refusedAfterRead (): void {
    this.#refused++
  }

  /** An inline job held the loop `ms`. */
  ranInline (ms: number): void {
    this.#inlineMs += ms
  }

  /** Whether a refusal frees the loop more than it costs it (true until measured). */
  pays (): boolean {
    if (this.#perRequestMs === undefined || this.#perJobMs === undefined) return true
    return this.#perJobMs >= REFUSAL_PAYOFF * this.#perRequestMs
  }

  /** The last estimates, for /metrics and tests: `j / o`, undefined until measured. */
  get ratio (): number | undefined {
    if (this.#perRequestMs === undefined || this.#perJobMs === undefined) return undefined
    return this.#perRequestMs === 0 ? Number.POSITIVE_INFINITY : this.#perJobMs / this.#perRequestMs
  }

  /** Ends the interval when one has passed: its figures join the estimates. */
  roll (now: number): void {
    if (now - this.#windowStart < this.#intervalMs) return
    const active = this.#activeMs()
    const admitted = this.#reads - this.#refused
    if (this.#reads >= PAYOFF_MIN_READS && admitted > 0) {
      const perRequest = Math.max(0, active - this.#activeAtStart - this.#inlineMs) / this.#reads
      const perJob = this.#inlineMs / admitted
      this.#perRequestMs = this.#perRequestMs === undefined ? perRequest : (this.#perRequestMs + perRequest) / 2
      this.#perJobMs = this.#perJobMs === undefined ? perJob : (this.#perJobMs + perJob) / 2
    }
    this.#windowStart = now
    this.#activeAtStart = active
    this.#reads = 0
    this.#refused = 0
    this.#inlineMs = 0
  }
}

/** How often the loop's own ticker runs; its lateness is the loop's queueing delay. */
export const LOOP_TICK_MS = 5

/**
 * The ticker stops once nothing has read the loop's delay for this long, and starts again with
 * the next read: an idle server's loop need not wake 200 times a second to measure a queue that
 * nothing joins.
 */
export const LOOP_IDLE_MS = 1000

/** A gap between two turns of the loop shorter than this (ms) means the loop went straight on. */
export const TURN_GAP_MS = 1

/**
 * The event loop as a queue: what waits in it is every callback (a request, a reply from a pool
 * thread) behind the one running. A ticker fires every LOOP_TICK_MS; how far past its time the
 * loop is now is how long the newest work has waited for the loop, readable at any moment, even
 * in the middle of a long turn (that is what a request parsed late in that turn sees).
 *
 * The ticker does not see what a request waited before its turn began: one that arrived early in
 * a long turn is read only in the next, and had waited all of the first. So admission also reads
 * the turns themselves: a turn begins with the first request that asks (refusal()) and ends when
 * the loop reaches its check phase (a setImmediate); when a turn begins right as the one before
 * ended, the loop went straight on, and what it reads may have arrived as that turn began. Read
 * so, a job is admitted only if it has waited at most the bound however early it arrived, and a
 * turn cannot hold more than the bound's worth of admitted work behind it (by hand, `spin` 1 ms
 * inline at twice the loop's capacity: admitted p99 about 11 ms against 31 with the ticker alone,
 * refusals' p99 about 12 ms against 34, about as many jobs answered; docs/performance.md).
 *
 * The turns alone over-read a loop that goes straight on under closed-loop clients: a request read
 * late in a turn may, by them, have arrived as the turn before began, while in fact it was sent
 * after its connection's previous answer. arrivedFrom() bounds it by that connection's previous
 * request; without that bound a stall made the queue stand for as long as such a load lasted.
 */
export class LoopDelay {
  readonly #rule: QueueDelayRule
  readonly #clock: () => number
  readonly #defer: (fn: () => void) => void
  readonly #payoff: RefusalPayoff | undefined
  #lastTick: number
  #timer: NodeJS.Timeout | undefined
  /** start() called and stop() not since: the ticker runs, or sleeps until the next read. */
  #started = false
  /** When the delay was last read (a request or job checked, auto's placement). */
  #lastRead: number
  /** When the turn now running first asked, or undefined between turns. */
  #turnStartedAt: number | undefined
  /** When the last turn that asked began and ended. */
  #lastTurnStartedAt = Number.NEGATIVE_INFINITY
  #lastTurnEndedAt = Number.NEGATIVE_INFINITY
  /** The earliest what this turn reads may have arrived. */
  #turnFrom = 0
  readonly #endTurn = (): void => {
    this.#turnStartedAt = undefined
    this.#lastTurnEndedAt = this.#clock()
  }

  /**
   * `defer` runs a callback when the turn is over (setImmediate; a fake clock's tests pass their
   * own). `activeMs`, the loop's active time so far, turns on the check that a refusal pays
   * (RefusalPayoff); without it, every job over the bound is refused.
   */
  constructor (
    rule: QueueDelayRule, clock: () => number, defer: (fn: () => void) => void = (fn) => { setImmediate(fn) },
    activeMs?: () => number
  ) {
    this.#rule = rule
    this.#clock = clock
    this.#defer = defer
    this.#lastTick = clock()
    this.#lastRead = this.#lastTick
    this.#payoff = activeMs === undefined ? undefined : new RefusalPayoff(rule.intervalMs, this.#lastTick, activeMs)
  }

  /** An inline job held the loop `ms` (what refusing such jobs would free). */
  ranInline (ms: number): void {
    this.#payoff?.ranInline(ms)
  }

  /** An admitted job's own loop time over what a request costs the loop (RefusalPayoff); undefined until measured. */
  get refusalPayoff (): number | undefined {
    return this.#payoff?.ratio
  }

  /**
   * Starts the ticker, counting from now: the time before (the process starting up) is not work
   * waiting for the loop. A rule whose target is 0 sheds nothing, and the delay is still measured.
   */
  start (): void {
    if (this.#started) return
    this.#started = true
    this.#lastRead = this.#clock()
    this.#startTicker(this.#lastRead)
  }

  stop (): void {
    this.#started = false
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  #startTicker (now: number): void {
    this.#lastTick = now
    this.#timer = setInterval(() => this.tick(), LOOP_TICK_MS)
    this.#timer.unref()
  }

  /**
   * The ticker's turn: how late it fires is a sample of the loop's delay. Once nothing has read
   * the delay for LOOP_IDLE_MS the ticker sleeps (the last samples, of an idle loop, are on time);
   * the next read wakes it.
   */
  tick (): void {
    const now = this.#clock()
    this.#rule.observe(Math.max(0, now - this.#lastTick - LOOP_TICK_MS), now)
    this.#lastTick = now
    this.#payoff?.roll(now)
    if (this.#timer !== undefined && now - this.#lastRead >= LOOP_IDLE_MS) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }

  /**
   * The delay is read at `now`: a sleeping ticker starts again, counting from now (nothing was
   * waiting for an idle loop; what arrived during this turn, the turns account for).
   */
  #read (now: number): void {
    this.#lastRead = now
    if (this.#started && this.#timer === undefined) this.#startTicker(now)
  }

  /** The earliest what the loop reads now may have arrived, by its turns (the class's comment says how). */
  #turnFromNow (now: number): number {
    if (this.#turnStartedAt === undefined) {
      this.#turnFrom = now - this.#lastTurnEndedAt < TURN_GAP_MS ? this.#lastTurnStartedAt : now
      this.#turnStartedAt = now
      this.#lastTurnStartedAt = now
      this.#defer(this.#endTurn)
    }
    return this.#turnFrom
  }

  /**
   * The earliest a request read now on a connection can have arrived, given when the connection's
   * previous request was read (undefined for its first). A client that waits for each answer
   * before it sends again (HTTP/1.1 without pipelining, as browsers, undici and autocannon do by
   * default) sent this request after that answer went out, and the answer went out after its
   * request was read: so a previous request read in an earlier turn bounds this one's arrival
   * more tightly than the turns can. One read in this same turn says nothing: the two came
   * together, pipelined, and the turns' bound stands.
   */
  arrivedFrom (previousRead: number | undefined, now = this.#clock()): number {
    this.#read(now)
    const turnFrom = this.#turnFromNow(now)
    const earlierTurn = previousRead !== undefined && previousRead < (this.#turnStartedAt as number)
    return earlierTurn ? Math.max(turnFrom, previousRead) : turnFrom
  }

  /** How long work arriving now has waited for the loop, in ms. */
  delayMs (now = this.#clock()): number {
    this.#read(now)
    return Math.max(0, now - this.#lastTick - LOOP_TICK_MS)
  }

  /**
   * OVERLOADED when work arriving now may not join the loop's queue; undefined when it may.
   * `arrivedFrom`, when the caller knows it (arrivedFrom()), is the earliest the work can have
   * arrived. A delay read here over the target is a sample; one under it is not: within a turn the
   * delay counts up from the tick that began it, so the first jobs of every turn would read as
   * "caught up" while the loop is in fact behind. Whether it has caught up is the ticker's to say.
   * Over the bound, the work is refused only if refusing pays (RefusalPayoff). `read`: this is the
   * first check of its request (false for a job checked again as it is about to run).
   */
  refusal (now = this.#clock(), arrivedFrom = Number.NEGATIVE_INFINITY, read = true): Error | undefined {
    if (!this.#rule.enabled) return undefined
    const delayMs = Math.max(this.delayMs(now), now - Math.max(this.#turnFromNow(now), arrivedFrom))
    if (delayMs > this.#rule.targetMs) this.#rule.observe(delayMs, now)
    const refuse = delayMs > this.#rule.boundMs() && (this.#payoff?.pays() ?? true)
    if (read) this.#payoff?.read(refuse)
    else if (refuse) this.#payoff?.refusedAfterRead()
    if (!refuse) return undefined
    return new errors.OVERLOADED(`the event loop is ${Math.round(delayMs)} ms behind, over the ${this.#rule.boundMs()} ms allowed`)
  }
}
