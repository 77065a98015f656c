/**
 * `CPU_JOBS=auto`: where each CPU job runs, inline on the event loop or on the pool, decided per
 * task from what this process has measured, never configured per task.
 *
 * - Each task, per size class of its input (`sizeClass`), keeps a moving estimate of its run time
 *   (from its jobs' own `runMs`, wherever they ran).
 * - The pool keeps one of its round trip: the crossing to a thread and back (messages, copies, a
 *   thread woken), timed one way, from handing a job to Piscina until its thread begins it, and
 *   counted twice. The way back, timed on the event loop, would also hold the loop's backlog
 *   (answers wait while it runs inline jobs), which grows with every job kept inline and would
 *   make ever costlier jobs look cheap beside the pool. It is the crossing of a pool in use: a
 *   sample counts when its thread was free and had run a job within `inUseMs`. A thread left idle
 *   longer (as while the tasks run inline, when an explored job finds it) must be woken and
 *   scheduled on cores the inline work keeps busy, which the jobs of a pool in use do not pay:
 *   counted, it would keep on the loop the tasks that would pay on the pool. Nor is a job that
 *   waited for a thread a sample (it is handed over just as its thread finishes), and that wait
 *   is no part of the crossing: a saturated pool does not make a costly job cheap, and the loop
 *   it would block is what answers. The estimate is the median of the last `ROUND_TRIP_WINDOW`
 *   samples: probes at start, one after another, give the first; pool jobs keep it current under
 *   load. A median, not a moving average: while tasks run inline, the few samples are jobs handed
 *   over beside a busy loop, and one of them can take 10 times the others (a thread that waited
 *   for a core); a moving average that they moved (0.44 ms to 2.07 in two costs of the spin
 *   sweep) nothing brought back down, since few jobs went to the pool, and 0.5 ms jobs then stayed
 *   inline where the pool served 29% more.
 * - A job runs inline when its task's estimate is well under the round trip (`inlineShare` of it)
 *   and the loop is on time; on the pool otherwise. A task not measured yet goes to the pool first.
 *   The round trip is a latency, and a pool whose threads are handed their next job early
 *   (ThreadPool) costs the event loop less per job than that: the spin sweep's pool beats inline
 *   from 0.2 ms, which half the round trip measured under that load (0.55 ms) keeps inline. A
 *   lower share (0.3) fixed that by hand but put 0.05 ms tasks near the line where the round trip
 *   is short (0.2 ms, one job at a time), and the real-server tests failed (bench/README.md).
 * - A band around that line: once on one side, a task crosses back only when its estimate is
 *   `band` past the line (inline again under 0.7 times it, on the pool from 1.3 times it). Near
 *   the line both placements serve about as much, while the round trip's estimate moves by
 *   15-20% under load: without the band a task there went back and forth between them (29% of
 *   its jobs on the pool, in stretches) and served less than either (bench/README.md has the runs).
 * - A strike: two inline runs in a row far over the estimate (`strikeFactor` times, and over
 *   `strikeFloorMs`) send the task to the pool until `strikeDecayMs` have passed without another,
 *   or until its estimate, fed by its pool runs, itself says costly (the cost really changed, and
 *   the estimate now follows it both ways). A task's first
 *   `inlineWarmUp` inline runs cannot strike: they run code the event loop's thread has not
 *   compiled yet, slower than the pool thread that measured it.
 * - Exploration: at most once every `exploreEveryMs`, a job of a task goes to the other placement,
 *   so that both estimates stay current while one of them is in use: a task running inline sends
 *   one to the pool (the round trip is measured only there); a task on the pool runs one inline
 *   only while its estimate is near the line (under `strikeFactor` times it), for its run time is
 *   measured on the pool as well, and a costly job explored inline would only block the loop.
 */
import type { Crossing, Via } from './types.js'

export type AutoVia = Extract<Via, 'inline' | 'pool'>
export const AUTO_REASONS = ['unseen', 'cheap', 'costly', 'strike', 'loop-late', 'explore'] as const
export type AutoReason = (typeof AUTO_REASONS)[number]

export interface AutoDecision { via: AutoVia, reason: AutoReason }

/** Estimates kept per process at most: past them, a new size class shares its task's own estimate. */
export const MAX_AUTO_KEYS = 256

/** A number's size class: its quarter octave. */
const quarterOctave = (value: number): number => Math.round(Math.log2(1 + Math.abs(value)) * 4)

/**
 * What the rule keys its estimates by: the task, and the size class of each number at the top of
 * its input, in quarter octaves (`fib[n~19]` for n = 25 to 30), so that `fib` n=1 and n=30 are
 * told apart while n=29 and n=30 share what was learned. Inputs without numbers: the task alone.
 * The definition; a job's key is found by SizeClasses, which gives the same for less.
 */
export function sizeClass (task: string, input: unknown): string {
  if (typeof input !== 'object' || input === null) return task
  const parts: string[] = []
  for (const [key, value] of Object.entries(input).sort(([a], [b]) => a < b ? -1 : 1)) {
    if (typeof value === 'number' && Number.isFinite(value)) parts.push(`${key}~${quarterOctave(value)}`)
  }
  return parts.length === 0 ? task : `${task}[${parts.join(',')}]`
}

/** The task as the rule keys it: its name, and the schema that says which of its input's fields are numbers. */
export interface SizedTask {
  readonly name: string
  readonly schema?: { readonly properties?: Readonly<Record<string, object>> }
}

/** A number's class code, one more than its quarter octave (0: absent); the largest, of Number.MAX_VALUE, is 4097. */
const CODE_BASE = 4099
/** Fields whose codes make one number exactly (CODE_BASE ** 4 < 2 ** 53); a task with more builds its key each time. */
const MAX_CODED_FIELDS = 4
/** Keys kept per task, by code: past them a key is built each time (what a job costs, not a key more or less). */
const MAX_CODED_KEYS = 2 * MAX_AUTO_KEYS

/**
 * One task's keys, found without building them: its input's numbers are its schema's `number` and
 * `integer` fields (the input was checked against it), and their classes, read in a fixed order,
 * make one number that finds the key built the first time. Building it each time (entries read,
 * sorted and joined into a string, then hashed by the Map it is looked up in) cost 3-5 µs of a
 * `phased` job's 150 on the event loop, in a profile of the server (`sizeClass` and `keyOf`).
 */
export class SizeClasses {
  readonly #name: string
  readonly #fields: readonly string[]
  readonly #keys = new Map<number, string>()

  constructor ({ name, schema }: SizedTask) {
    this.#name = name
    this.#fields = Object.entries(schema?.properties ?? {})
      .filter(([, s]) => { const type = (s as { type?: unknown }).type; return type === 'number' || type === 'integer' })
      .map(([field]) => field)
      .sort()
  }

  /** The job's key: sizeClass(name, input) for an input that its schema admits. */
  keyOf (input: unknown): string {
    const fields = this.#fields
    if (fields.length === 0 || typeof input !== 'object' || input === null) return this.#name
    if (fields.length > MAX_CODED_FIELDS) return sizeClass(this.#name, input)
    let code = 0
    for (let i = 0; i < fields.length; i++) {
      const value = (input as Record<string, unknown>)[fields[i] as string]
      code = code * CODE_BASE + (typeof value === 'number' && Number.isFinite(value) ? quarterOctave(value) + 1 : 0)
    }
    let key = this.#keys.get(code)
    if (key === undefined) {
      key = sizeClass(this.#name, input)
      if (this.#keys.size < MAX_CODED_KEYS) this.#keys.set(code, key)
    }
    return key
  }
}

export interface AutoRuleOptions {
  /** Inline when a task's estimated run is under this share of the pool's round trip. */
  inlineShare: number
  /** How far past that line (a share of it) a task's estimate must be to change sides. */
  band: number
  /** Weight of a new sample in the moving estimates. */
  alpha: number
  /** A task explores the other placement at most once in this many ms (0: never). */
  exploreEveryMs: number
  /** A crossing is a sample of the round trip when its thread had run a job within this many ms. */
  inUseMs: number
  /** An inline run over this many times its estimate... */
  strikeFactor: number
  /** ...and over this many ms is a strike. */
  strikeFloorMs: number
  /** A strike keeps its task on the pool this long. */
  strikeDecayMs: number
  /** Nothing is started inline while the loop is later than this. */
  loopLateMs: number
  /** A task's first inline runs, which cannot strike. */
  inlineWarmUp: number
}

export const AUTO_DEFAULTS: Readonly<AutoRuleOptions> = Object.freeze({
  inlineShare: 0.5,
  band: 0.3,
  alpha: 0.2,
  exploreEveryMs: 500,
  inUseMs: 1,
  strikeFactor: 4,
  strikeFloorMs: 1,
  strikeDecayMs: 5000,
  loopLateMs: 10,
  inlineWarmUp: 3
})

/** What the rule holds about one task, as /tasks and /metrics show it. */
export interface AutoTaskState {
  runMs: number | undefined
  placement: AutoVia
  reason: AutoReason
  jobs: number
  strikeAt: number | undefined
}

interface TaskState extends AutoTaskState {
  exploredAt: number
  inlineRuns: number
  samples: number
  /** Inline runs over the strike bar in a row. */
  overRuns: number
  /** The side of the line its estimate last put it on; undefined before its first estimate. */
  costly: boolean | undefined
}

/** Inline runs over the bar in a row that make a strike. */
const STRIKE_RUNS = 2

/** A task's first samples, of which its estimate keeps the lowest. */
const FIRST_SAMPLES = 5

/** Crossings the round trip's estimate is the median of (odd: the middle one). */
export const ROUND_TRIP_WINDOW = 15

const ewma = (previous: number | undefined, sample: number, alpha: number): number =>
  previous === undefined ? sample : previous + alpha * (sample - previous)

/**
 * A task's estimate after its `count`-th sample: the first FIRST_SAMPLES keep the lowest (a first
 * run is not the cost), and after them one sample moves it by at most strikeFactor times it.
 */
function nextEstimate (estimate: number | undefined, sample: number, count: number, o: AutoRuleOptions): number {
  if (estimate === undefined || (count <= FIRST_SAMPLES && sample < estimate)) return sample
  return ewma(estimate, Math.min(sample, o.strikeFactor * estimate), o.alpha)
}

export class AutoRule {
  readonly #options: AutoRuleOptions
  readonly #tasks = new Map<string, TaskState>()
  /** Each task's size classes, by name. */
  readonly #sizeClasses = new Map<string, SizeClasses>()
  #roundTripMs: number | undefined
  /**
   * The last ROUND_TRIP_WINDOW round trips timed, oldest overwritten first; Infinity where none yet,
   * so that a sorted copy holds the samples first. Typed arrays: a pool job's sample allocates nothing.
   */
  readonly #crossings = new Float64Array(ROUND_TRIP_WINDOW).fill(Infinity)
  readonly #sorted = new Float64Array(ROUND_TRIP_WINDOW)
  #crossingCount = 0

  constructor (options: Partial<AutoRuleOptions> = {}) {
    this.#options = { ...AUTO_DEFAULTS, ...options }
  }

  /** The pool's round trip estimate in ms: undefined until a crossing has been timed. */
  get roundTripMs (): number | undefined {
    return this.#roundTripMs
  }

  /**
   * The key to decide and observe a job by: its size class, or its task alone once MAX_AUTO_KEYS
   * estimates are kept (a bound on memory and on /metrics' series, whatever inputs clients send).
   */
  keyOf (task: SizedTask, input: unknown): string {
    let classes = this.#sizeClasses.get(task.name)
    if (classes === undefined) this.#sizeClasses.set(task.name, classes = new SizeClasses(task))
    const key = classes.keyOf(input)
    return this.#tasks.has(key) || this.#tasks.size < MAX_AUTO_KEYS - 1 ? key : task.name
  }

  /** Where the next job of `task` runs, and why; `loopDelayMs` is how late the event loop is now. */
  decide (task: string, now: number, loopDelayMs = 0): AutoDecision {
    const state = this.#state(task, now)
    state.jobs++
    const settled = this.#settled(state, now, loopDelayMs)
    state.placement = settled.via
    state.reason = settled.reason
    const o = this.#options
    // Exploring only where both placements are open: not on a strike, nor while the loop is late;
    // the first time an interval after the task was first seen.
    if (o.exploreEveryMs > 0 && now - state.exploredAt >= o.exploreEveryMs && this.#mayExplore(state, settled.reason)) {
      state.exploredAt = now
      return { via: settled.via === 'inline' ? 'pool' : 'inline', reason: 'explore' }
    }
    return settled
  }

  /** A job of `task` ran on `via` for `runMs`; a pool job that found a thread free crossed to it so. */
  observe (task: string, via: AutoVia, runMs: number, crossing: Crossing | undefined, now: number): void {
    const o = this.#options
    const state = this.#state(task, now)
    if (via === 'inline' && ++state.inlineRuns > o.inlineWarmUp && state.runMs !== undefined) {
      // One slow run is often a garbage collection that landed in it: a strike takes two in a row.
      const over = runMs > o.strikeFactor * state.runMs && runMs > o.strikeFloorMs
      state.overRuns = over ? state.overRuns + 1 : 0
      if (state.overRuns >= STRIKE_RUNS) state.strikeAt = now
    }
    // A thread's first runs of a task (its code not compiled yet, or a task that calibrates itself
    // once per thread) are not its cost: the first samples keep the lowest, and after them one
    // sample moves the estimate by at most strikeFactor times.
    state.runMs = nextEstimate(state.runMs, runMs, ++state.samples, o)
    if (crossing !== undefined && crossing.threadIdleMs <= o.inUseMs) this.crossed(crossing.handOffMs)
  }

  /**
   * A crossing to a thread in use took `handOffMs` one way (a pool job's, or a probe's): a round
   * trip of twice it. The estimate is the median of the last ROUND_TRIP_WINDOW (a thread still
   * starting, or one that waited for a core, is not the crossing).
   */
  crossed (handOffMs: number): void {
    this.#crossings[this.#crossingCount++ % ROUND_TRIP_WINDOW] = 2 * handOffMs
    // The median: the middle sample, or the lower of the two middle ones while fewer are held.
    const held = Math.min(this.#crossingCount, ROUND_TRIP_WINDOW)
    this.#sorted.set(this.#crossings)
    this.#roundTripMs = this.#sorted.sort()[(held - 1) >> 1]
  }

  /** Every task seen so far, by name. */
  tasks (): ReadonlyMap<string, Readonly<AutoTaskState>> {
    return this.#tasks
  }

  #settled (state: TaskState, now: number, loopDelayMs: number): AutoDecision {
    const o = this.#options
    if (state.runMs === undefined || this.#roundTripMs === undefined) return { via: 'pool', reason: 'unseen' }
    const line = o.inlineShare * this.#roundTripMs
    const bar = state.costly === undefined ? line : line * (state.costly ? 1 - o.band : 1 + o.band)
    const costly = state.runMs >= bar
    state.costly = costly
    if (state.strikeAt !== undefined) {
      // A strike bridges the time the estimate takes to learn a new cost: once the estimate says
      // costly by itself, it is in charge again, and follows the task back down when it gets cheap.
      if (!costly && now - state.strikeAt < o.strikeDecayMs) return { via: 'pool', reason: 'strike' }
      state.strikeAt = undefined
    }
    if (costly) return { via: 'pool', reason: 'costly' }
    if (loopDelayMs > o.loopLateMs) return { via: 'pool', reason: 'loop-late' }
    return { via: 'inline', reason: 'cheap' }
  }

  #mayExplore (state: TaskState, reason: AutoReason): boolean {
    if (reason === 'cheap') return true
    const o = this.#options
    return reason === 'costly' && (state.runMs ?? Infinity) < o.strikeFactor * o.inlineShare * (this.#roundTripMs ?? 0)
  }

  #state (task: string, now: number): TaskState {
    let state = this.#tasks.get(task)
    if (state === undefined) {
      state = { runMs: undefined, placement: 'pool', reason: 'unseen', jobs: 0, strikeAt: undefined, exploredAt: now, inlineRuns: 0, samples: 0, overRuns: 0, costly: undefined }
      this.#tasks.set(task, state)
    }
    return state
  }
}
