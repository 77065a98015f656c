import { readdir } from 'node:fs/promises'
import { basename, extname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { faultTaskDir, taskDirs } from '../paths.js'
import type { AnyTask, TaskKind } from './types.js'

const NAME = /^[a-z][a-z0-9-]{0,39}$/

export interface LoadOptions {
  /** Where the CPU and I/O tasks are; dist/cpu-tasks and dist/io-tasks unless given. */
  dirs?: Readonly<Record<TaskKind, string>>
  /** Also load dist/fault-tasks (FAULT_TASKS=on), whose tasks are CPU tasks. */
  faults?: boolean
}

/**
 * Imports every task module under dist/cpu-tasks and dist/io-tasks. Adding a file adds a task: the
 * file's name is the task's name, its folder its kind, and a module that says otherwise is refused
 * at start-up rather than served wrongly.
 */
export async function loadTasks (
  { dirs = taskDirs, faults = false }: LoadOptions = {}
): Promise<ReadonlyMap<string, AnyTask>> {
  const tasks = new Map<string, AnyTask>()
  const folders: Array<[string, TaskKind]> = [[dirs.cpu, 'cpu'], [dirs.io, 'io']]
  if (faults) folders.push([faultTaskDir, 'cpu'])
  for (const [dir, kind] of folders) {
    const files = (await readdir(dir)).filter((f) => extname(f) === '.js').sort()
    for (const file of files) {
      const path = join(dir, file)
      const mod: { default?: AnyTask } = await import(pathToFileURL(path).href)
      const task = mod.default
      const name = basename(file, '.js')
      if (task === undefined || task.name !== name || task.kind !== kind || !NAME.test(name) ||
          typeof task.run !== 'function' || task.schema?.type !== 'object' || task.schema.additionalProperties !== false) {
        throw new Error(`${path} must export default a ${kind} task named "${name}" with a closed object schema`)
      }
      tasks.set(name, Object.freeze(task))
    }
  }
  return tasks
}
