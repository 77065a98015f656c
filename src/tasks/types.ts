/** What every module under cpu-tasks/ and io-tasks/ exports as its default. */
import type { KeyValue, Postgres } from '../backends/handles.js'

export type TaskKind = 'cpu' | 'io'

/** A JSON Schema for a task's input: an object, closed, every number and size bounded. */
export interface InputSchema {
  readonly type: 'object'
  readonly properties: Readonly<Record<string, object>>
  readonly required?: readonly string[]
  readonly additionalProperties: false
}

export interface TaskContext {
  /**
   * Aborted when the job times out or is cancelled; I/O tasks pass it to what they wait on. Made
   * when first read: a task that only waits on a timer calls `wait()` instead, for less.
   */
  readonly signal: AbortSignal
  /**
   * Resolves with `value` after `ms`, or rejects with the abort's reason as soon as the job is
   * aborted. A method: call it on the context, not destructured.
   */
  wait<T> (ms: number, value: T): Promise<T>
  /** Base URL of the delay service, for the tasks that call it. */
  readonly upstreamUrl: string | undefined
  /** PostgreSQL, for a task with `usesBackends` (absent without DATABASE_URL). */
  readonly postgres?: Postgres
  /** Redis, for a task with `usesBackends` (absent without REDIS_URL). */
  readonly redis?: KeyValue
}

export interface TaskDefinition<Input = unknown, Output = unknown> {
  readonly name: string
  readonly kind: TaskKind
  readonly description: string
  readonly schema: InputSchema
  /** The task reads `context.postgres` or `context.redis`: a pool thread then opens its own connections for it. */
  readonly usesBackends?: true
  /** CPU tasks return synchronously; I/O tasks return a promise. */
  run (input: Input, context: TaskContext): Output | Promise<Output>
}

/**
 * A task as the registry holds it, its input type erased (run is a method, so its parameter is checked
 * bivariantly).
 */
export type AnyTask = TaskDefinition<unknown, unknown>
