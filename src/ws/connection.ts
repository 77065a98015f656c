import type { WebSocket, RawData } from 'ws'
import { errors, toErrorBody } from '../errors.js'
import { decodeJson, decodeMsgpack, encodeMsgpack } from '../http/codec.js'
import type { JobAnswer, JobOutcome, JobRunner } from '../jobs.js'
import type { JobAbort } from '../placement/types.js'

export interface ConnectionLimits {
  maxInFlight: number
  /** Answers handed to the socket but not yet written out, in bytes, past which reading stops. */
  maxBufferedBytes: number
}

type Id = string | number | null

/**
 * A frame's answer: a job's outcome with the frame's id; JSON frames are answered in text, MessagePack
 * frames in binary.
 */
type Answer = { id: Id } & JobOutcome

const MAX_ID_LENGTH = 256

function isId (id: unknown): id is string | number {
  return (typeof id === 'string' && id.length <= MAX_ID_LENGTH) || (typeof id === 'number' && Number.isFinite(id))
}

// Each field written out, as the runner's batch items: `{ id, ok: true, ...answer }` is built through V8's runtime.
function answeredFrame (id: Id, { task, kind, result, timing, ranOn }: JobAnswer): Answer {
  return { id, ok: true, task, kind, result, timing, ranOn }
}

function failure (id: Id, err: unknown): Answer {
  return { id, ok: false, error: toErrorBody(err) }
}

/**
 * One client's WebSocket: one job a frame, each answered in one frame, in completion order.
 *
 * Bounds, so that no client can make the server hold more than it allows: at most `maxInFlight`
 * jobs (the next is answered OVERLOADED at once); and when answers pile up unwritten because the
 * client reads slowly, the connection stops reading frames until they drain, so a slow reader
 * slows itself, not the server. When the socket closes, every job still in flight is cancelled.
 */
export class JobConnection {
  readonly #socket: WebSocket
  readonly #runner: JobRunner
  readonly #limits: ConnectionLimits
  /** Jobs in flight; those that can be cancelled (not inline ones) also have a controller here. */
  #inFlight = 0
  readonly #cancellable = new Set<JobAbort>()
  #closed = false
  #unsentBytes = 0
  #peakUnsentBytes = 0
  #pauses = 0
  #paused = false
  #draining = false
  #alive = true
  readonly #refused: (code: 'OVERLOADED') => void

  constructor (socket: WebSocket, runner: JobRunner, limits: ConnectionLimits, refused: (code: 'OVERLOADED') => void) {
    this.#socket = socket
    this.#runner = runner
    this.#limits = limits
    this.#refused = refused
    socket.on('message', (data, isBinary) => this.#onFrame(data, isBinary))
    socket.on('pong', () => { this.#alive = true })
    socket.once('close', () => {
      this.#closed = true
      for (const controller of this.#cancellable) controller.abort(new errors.CANCELLED())
      this.#cancellable.clear()
    })
  }

  get inFlight (): number {
    return this.#inFlight
  }

  get unsentBytes (): number {
    return this.#unsentBytes
  }

  get peakUnsentBytes (): number {
    return this.#peakUnsentBytes
  }

  get pauses (): number {
    return this.#pauses
  }

  /** Called every ping interval: closes a peer that did not answer the last ping. */
  heartbeat (): void {
    if (!this.#alive) {
      this.#socket.terminate()
      return
    }
    this.#alive = false
    this.#socket.ping()
  }

  terminate (): void {
    this.#socket.terminate()
  }

  /** Stops taking jobs, answers those in flight, then closes with 1001 (going away). */
  async drain (): Promise<void> {
    this.#draining = true
    if (this.#socket.readyState === this.#socket.CLOSED) return
    const closed = new Promise<void>((resolve) => this.#socket.once('close', () => resolve()))
    this.#closeIfDrained()
    await closed
  }

  #closeIfDrained (): void {
    if (this.#draining && this.#inFlight === 0) this.#socket.close(1001, 'server shutting down')
  }

  #onFrame (data: RawData, isBinary: boolean): void {
    const body = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)
    let frame: unknown
    try {
      frame = isBinary ? decodeMsgpack(body) : decodeJson(body)
    } catch (err) {
      this.#send(failure(null, err), isBinary)
      return
    }
    if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
      this.#send(failure(null, new errors.BAD_INPUT('a frame is an object { id, task, input }')), isBinary)
      return
    }
    // The rest of the frame is the job, checked by the job runner as every transport's is.
    const { id, ...job } = frame as Record<string, unknown>
    if (!isId(id)) {
      this.#send(failure(null, new errors.BAD_INPUT(`id must be a string of at most ${MAX_ID_LENGTH} characters or a finite number`)), isBinary)
      return
    }
    if (this.#draining || this.#inFlight >= this.#limits.maxInFlight) {
      this.#refused('OVERLOADED')
      const why = this.#draining ? 'the server is shutting down' : `at most ${this.#limits.maxInFlight} jobs in flight per connection`
      this.#send(failure(id, new errors.OVERLOADED(why)), isBinary)
      return
    }
    this.#runJob(id, job, isBinary)
  }

  #runJob (id: string | number, job: unknown, binary: boolean): void {
    this.#inFlight++
    let abort: JobAbort | undefined
    // A callback, not a promise: thousands of jobs wait here at once, and each holds what it holds.
    const control = (a: JobAbort): void => {
      abort = a
      this.#cancellable.add(a)
    }
    this.#runner.submit(job, { control, where: 'frame' }, (error, answer) => {
      this.#inFlight--
      if (abort !== undefined) this.#cancellable.delete(abort)
      if (this.#closed) return // the socket is gone: nobody to answer
      this.#answer(error === undefined ? answeredFrame(id, answer as JobAnswer) : failure(id, error), binary)
    })
  }

  #answer (answer: Answer, binary: boolean): void {
    try {
      this.#send(answer, binary)
    } catch (err) {
      this.#send(failure(answer.id, err), binary) // a result that would not encode: answered, not dropped
    }
    this.#closeIfDrained()
  }

  #send (answer: Answer, binary: boolean): void {
    if (this.#socket.readyState !== this.#socket.OPEN) return
    const data = binary ? encodeMsgpack(answer) : JSON.stringify(answer)
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length
    this.#unsentBytes += size
    if (this.#unsentBytes > this.#peakUnsentBytes) this.#peakUnsentBytes = this.#unsentBytes
    this.#socket.send(data, { binary }, () => {
      this.#unsentBytes -= size
      if (this.#paused && this.#unsentBytes <= this.#limits.maxBufferedBytes / 2) {
        this.#paused = false
        this.#socket.resume()
      }
    })
    if (!this.#paused && this.#unsentBytes > this.#limits.maxBufferedBytes) {
      this.#paused = true
      this.#pauses++
      this.#socket.pause()
    }
  }
}
