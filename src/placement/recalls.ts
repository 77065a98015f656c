/**
 * Jobs handed to a pool thread while it runs another, in a pool of several threads, watched until
 * they begin. A job handed that way waits for that one thread, even if another frees first; behind
 * a job that runs away (until JOB_TIMEOUT_MS, or for ever in the `fault` task's loop) it would wait
 * beside idle threads and time out with it. So a job that has not begun within `afterMs()` is
 * recalled: its ticket is cancelled (its thread will skip it, tickets.ts) and the pool hands it
 * again, to whichever thread is free first. A recalled job's cell is given back only when its
 * thread has skipped it (or died), so that no other job can be put in it while that thread may
 * still read it: recalls wait while `maxRecalled` cells are held so.
 */
import { performance } from 'node:perf_hooks'
import type { PoolReply } from './messages.js'
import { HANDED, type Tickets } from './tickets.js'

interface Watched {
  slot: number
  handedAt: number
  recalled: boolean
  recall: () => void
}

export class Recalls {
  readonly #tickets: Tickets
  readonly #afterMs: () => number
  readonly #maxRecalled: number
  /** In the order they were handed: the first is the one waiting longest. */
  readonly #watched = new Set<Watched>()
  /** Cells of recalled jobs their threads have not skipped yet. */
  #recalled = 0
  #timer: NodeJS.Timeout | undefined

  constructor (tickets: Tickets, afterMs: () => number, maxRecalled: number) {
    this.#tickets = tickets
    this.#afterMs = afterMs
    this.#maxRecalled = maxRecalled
  }

  /** `attempt`'s reply, or undefined if the job was recalled first: the caller hands it again. */
  watch (slot: number, attempt: Promise<PoolReply>): Promise<PoolReply | undefined> {
    // One promise per watched job, not two: this is on every pipelined job's way.
    return new Promise((resolve, reject) => {
      const watched: Watched = { slot, handedAt: performance.now(), recalled: false, recall: () => resolve(undefined) }
      this.#watched.add(watched)
      this.#arm()
      const settled = (): boolean => {
        this.#watched.delete(watched)
        if (!watched.recalled) return true
        this.#recalled--
        this.#tickets.give(slot)
        return false
      }
      attempt.then((reply) => { if (settled()) resolve(reply) }, (err: unknown) => { if (settled()) reject(err) })
    })
  }

  close (): void {
    clearTimeout(this.#timer)
  }

  readonly #check = (): void => {
    this.#timer = undefined
    const now = performance.now()
    const afterMs = this.#afterMs()
    for (const watched of this.#watched) {
      // Begun, or cancelled by its own abort: nothing to watch for any more.
      if (this.#tickets.state(watched.slot) !== HANDED) {
        this.#watched.delete(watched)
        continue
      }
      if (now - watched.handedAt < afterMs) break
      if (this.#recalled >= this.#maxRecalled) {
        this.#arm(afterMs) // when threads have skipped some
        return
      }
      if (!this.#tickets.cancel(watched.slot)) continue // it began just now
      this.#watched.delete(watched)
      watched.recalled = true
      this.#recalled++
      watched.recall()
    }
    this.#arm()
  }

  /** A timer for when the job waiting longest is due (or in `inMs`), if none is set. */
  #arm (inMs?: number): void {
    const first = this.#watched.values().next()
    if (this.#timer !== undefined || first.done === true) return
    const dueInMs = inMs ?? first.value.handedAt + this.#afterMs() - performance.now()
    this.#timer = setTimeout(this.#check, Math.max(1, dueInMs)).unref()
  }
}
