import type { TaskContext } from './types.js'
import { wait } from './wait.js'

/** What a job's context holds besides its abort: the same for every job of a thread. */
export type TaskResources = Pick<TaskContext, 'upstreamUrl' | 'postgres' | 'redis'>

/**
 * A job's context and its abort in one object, made per job on the thread that runs its task.
 *
 * An AbortController and its signal hold about 0.8 KB of heap in Node 20 (an `EventTarget` keeps
 * two `Map`s) and take microseconds to make, and an I/O job holds its context for as long as it
 * waits: thousands at once. So the signal is made only when a task reads `signal` (to hand it to
 * `fetch` or a driver); a task that only waits on a timer (`sleep`) calls `wait()`, which listens
 * to the abort through one slot of its own.
 */
export class RunContext implements TaskContext {
  aborted = false
  reason: unknown = undefined
  readonly #resources: TaskResources
  #controller: AbortController | undefined = undefined
  /** The one waiting `wait()` call's abort, if any. */
  #onAbort: (() => void) | undefined = undefined

  constructor (resources: TaskResources) {
    this.#resources = resources
  }

  get upstreamUrl (): string | undefined {
    return this.#resources.upstreamUrl
  }

  get postgres (): TaskContext['postgres'] {
    return this.#resources.postgres
  }

  get redis (): TaskContext['redis'] {
    return this.#resources.redis
  }

  /** Made on first read, aborted already if the job is. */
  get signal (): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.aborted) this.#controller.abort(this.reason)
    }
    return this.#controller.signal
  }

  /** Aborts the job once: its signal, if made, and its waiting `wait()`, with `reason`. */
  abort (reason: unknown = new Error('aborted')): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    this.#controller?.abort(reason)
    const onAbort = this.#onAbort
    this.#onAbort = undefined
    onAbort?.()
  }

  wait<T> (ms: number, value: T): Promise<T> {
    if (this.aborted) return Promise.reject(this.reason)
    // A second wait at once (a task waiting on two timers) listens to the signal instead.
    if (this.#onAbort !== undefined) return wait(ms, value, this.signal)
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#onAbort = undefined
        resolve(value)
      }, ms)
      this.#onAbort = () => {
        clearTimeout(timer)
        reject(this.reason)
      }
    })
  }
}
