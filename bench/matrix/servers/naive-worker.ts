/** The naive server's pool thread: runs a task module by name, no checks. */
import { pathToFileURL } from 'node:url'
import { taskDirs } from '../../../src/paths.js'
import { RunContext } from '../../../src/tasks/context.js'
import type { AnyTask } from '../../../src/tasks/types.js'

const loaded = new Map<string, AnyTask>()

export default async function run ({ task, input }: { task: string, input: unknown }): Promise<unknown> {
  let t = loaded.get(task)
  if (t === undefined) {
    t = (await import(pathToFileURL(`${taskDirs.cpu}/${task}.js`).href) as { default: AnyTask }).default
    loaded.set(task, t)
  }
  return await t.run(input, new RunContext({ upstreamUrl: undefined }))
}
