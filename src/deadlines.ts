/** One job's place in the line: what to call if it is still there at its deadline. */
export interface Deadline {
  readonly at: number
  readonly expire: () => void
  prev: Deadline | undefined
  next: Deadline | undefined
}

/**
 * JOB_TIMEOUT_MS for every job in flight on one timer. Every job gets the same timeout, so
 * deadlines arrive in the order jobs start: a doubly linked line, appended at its tail, cut
 * anywhere in O(1) as jobs end, and one timer armed for its head. A timer per job would cost each
 * job a Timeout and its closure for as long as it is in flight (10,000 WebSocket jobs waiting on
 * I/O hold 10,000 of them).
 *
 * The timer is not re-armed when a job ends: when it fires it expires what is due and re-arms for
 * the job then at the head, so a stream of short jobs costs one timer callback per timeout period,
 * not a clearTimeout and setTimeout each.
 */
export class Deadlines {
  #head: Deadline | undefined
  #tail: Deadline | undefined
  #timer: NodeJS.Timeout | undefined

  constructor (readonly timeoutMs: number) {}

  /** Starts a job's clock: `expire` is called once, at its deadline, unless remove() comes first. */
  add (expire: () => void): Deadline {
    const deadline: Deadline = { at: performance.now() + this.timeoutMs, expire, prev: this.#tail, next: undefined }
    if (this.#tail === undefined) this.#head = deadline
    else this.#tail.next = deadline
    this.#tail = deadline
    this.#timer ??= setTimeout(() => this.#fire(), this.timeoutMs)
    return deadline
  }

  /** Takes a job off the line as it ends: false if it was no longer there (its deadline had come). */
  remove (deadline: Deadline): boolean {
    const { prev, next } = deadline
    if (prev === undefined) {
      if (this.#head !== deadline) return false
      this.#head = next
    } else {
      prev.next = next
    }
    if (next === undefined) this.#tail = prev
    else next.prev = prev
    deadline.prev = undefined
    deadline.next = undefined
    return true
  }

  /** Expires every job whose deadline has come, then waits for the next one, if any. */
  #fire (): void {
    this.#timer = undefined
    const now = performance.now()
    while (this.#head !== undefined && this.#head.at <= now) {
      const due = this.#head
      this.remove(due)
      due.expire()
    }
    if (this.#head === undefined) return
    this.#timer = setTimeout(() => this.#fire(), Math.max(1, Math.ceil(this.#head.at - now)))
  }

  /** Stops the timer; the jobs still in the line are not expired. */
  close (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }
}
