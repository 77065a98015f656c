import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { errors } from '../errors.js'
import { loadTasks, type LoadOptions } from './load.js'
import type { AnyTask, InputSchema, TaskKind } from './types.js'

/** Longest task name a request may give (the catalogue's are at most 40). */
export const MAX_TASK_NAME = 64

export interface CatalogueEntry {
  name: string
  kind: TaskKind
  description: string
  input: InputSchema
}

/**
 * A job as every transport sends it: `{ task, input }` (a WebSocket frame's `id` is taken off
 * first). Checked here, once, by one compiled schema, whichever way the job came.
 */
const ENVELOPE = {
  type: 'object',
  properties: {
    task: { type: 'string', minLength: 1, maxLength: MAX_TASK_NAME },
    input: { type: 'object' }
  },
  required: ['task'],
  additionalProperties: false
} as const

/** "input.n must be <= 35", "input has unknown property "m"": one line a client can act on. */
function describeError (error: ErrorObject | undefined, root: string): string {
  if (error === undefined) return `${root} is invalid`
  const where = `${root}${error.instancePath.replaceAll('/', '.')}`
  if (error.keyword === 'additionalProperties') return `${where} has unknown property "${String(error.params.additionalProperty)}"`
  return `${where} ${error.message ?? 'is invalid'}`
}

interface Entry {
  task: AnyTask
  validate: ValidateFunction
}

/**
 * The task catalogue with one compiled validator per task. Validation is strict: no coercion
 * ("30" is not 30), no extra properties, no removal of them either; defaults are filled in.
 */
export class TaskRegistry {
  readonly #entries: ReadonlyMap<string, Entry>
  readonly #envelope: ValidateFunction
  readonly catalogue: readonly CatalogueEntry[]

  private constructor (tasks: ReadonlyMap<string, AnyTask>) {
    const ajv = new Ajv(
      { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false, strict: true }
    )
    this.#envelope = ajv.compile(ENVELOPE)
    const entries = new Map<string, Entry>()
    for (const [name, task] of tasks) entries.set(name, { task, validate: ajv.compile(task.schema) })
    this.#entries = entries
    this.catalogue = Object.freeze([...tasks.values()].map((t) =>
      Object.freeze({ name: t.name, kind: t.kind, description: t.description, input: t.schema })))
  }

  static async load (options: LoadOptions = {}): Promise<TaskRegistry> {
    return new TaskRegistry(await loadTasks(options))
  }

  /**
   * A job's task and its checked input, or a coded error thrown: BAD_INPUT for a job that is not
   * `{ task, input }` with a task name of 1 to MAX_TASK_NAME characters, UNKNOWN_TASK for a name
   * not in the catalogue (whatever it looks like: names are looked up, never used as paths),
   * BAD_INPUT for input that fails the task's schema. `where` names the job in messages.
   */
  resolve (job: unknown, where = 'job'): { task: AnyTask, input: unknown } {
    if (!this.#envelope(job)) throw new errors.BAD_INPUT(describeError(this.#envelope.errors?.[0], where))
    const { task: name, input } = job as { task: string, input?: unknown }
    const entry = this.#entries.get(name)
    if (entry === undefined) throw new errors.UNKNOWN_TASK(JSON.stringify(name))
    const value = input ?? {}
    if (!entry.validate(value)) {
      throw new errors.BAD_INPUT(`${describeError(entry.validate.errors?.[0], 'input')} (task ${name})`)
    }
    return { task: entry.task, input: value }
  }

  /** The task a job names, if it names one of the catalogue: a refused job still counts under it. */
  taskOf (job: unknown): AnyTask | undefined {
    const name = (typeof job === 'object' && job !== null) ? (job as { task?: unknown }).task : undefined
    return typeof name === 'string' ? this.#entries.get(name)?.task : undefined
  }

  get (name: string): AnyTask | undefined {
    return this.#entries.get(name)?.task
  }
}
