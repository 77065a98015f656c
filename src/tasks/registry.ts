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

/** "input.n must be <= 35", "input has unknown property "m"": one line a client can act on. */
function describeError (error: ErrorObject | undefined): string {
  if (error === undefined) return 'input is invalid'
  const where = `input${error.instancePath.replaceAll('/', '.')}`
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
  readonly catalogue: readonly CatalogueEntry[]

  private constructor (tasks: ReadonlyMap<string, AnyTask>) {
    const ajv = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false, strict: true })
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
   * The task and its checked input, or a coded error thrown: BAD_INPUT for a name that is not a
   * string of 1 to MAX_TASK_NAME characters, UNKNOWN_TASK for one not in the catalogue (whatever
   * it looks like: names are looked up, never used as paths), BAD_INPUT for input that fails.
   */
  resolve (name: unknown, input: unknown): { task: AnyTask, input: unknown } {
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_TASK_NAME) {
      throw new errors.BAD_INPUT(`task must be a string of 1 to ${MAX_TASK_NAME} characters`)
    }
    const entry = this.#entries.get(name)
    if (entry === undefined) throw new errors.UNKNOWN_TASK(JSON.stringify(name))
    const value = input ?? {}
    if (!entry.validate(value)) {
      throw new errors.BAD_INPUT(`${describeError(entry.validate.errors?.[0])} (task ${name as string})`)
    }
    return { task: entry.task, input: value }
  }

  get (name: string): AnyTask | undefined {
    return this.#entries.get(name)?.task
  }
}
