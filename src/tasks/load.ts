import { readdir } from 'node:fs/promises'
import { basename, extname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { taskDirs } from '../paths.js'
import type { AnyTask, TaskKind } from './types.js'

const NAME = /^[a-z][a-z0-9-]{0,39}$/

/**
 * Imports every task module under dist/cpu-tasks and dist/io-tasks. Adding a file adds a task: the
 * file's name is the task's name, its folder its kind, and a module that says otherwise is refused
 * at start-up rather than served wrongly.
 */
export async function loadTasks (dirs: Readonly<Record<TaskKind, string>> = taskDirs): Promise<ReadonlyMap<string, AnyTask>> {
  const tasks = new Map<string, AnyTask>()
  for (const kind of ['cpu', 'io'] as const) {
    const files = (await readdir(dirs[kind])).filter((f) => extname(f) === '.js').sort()
    for (const file of files) {
      const path = join(dirs[kind], file)
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
