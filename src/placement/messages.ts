/** What crosses between a process's event loop and its pool threads: the only messages there are. */
import type { ErrorCode } from '../errors.js'

export interface PoolRequest {
  task: string
  input: unknown
  upstreamUrl: string | undefined
}

interface Ran {
  /** When the thread began the task: performance.timeOrigin + performance.now(), comparable across threads. */
  startedAt: number
  runMs: number
  threadId: number
}

/** A task's own coded failure (UPSTREAM_FAILED, ...) comes back as data; anything else it throws, Piscina rejects with. */
export type PoolReply =
  | (Ran & { ok: true, result: unknown })
  | (Ran & { ok: false, code: ErrorCode, message: string })
