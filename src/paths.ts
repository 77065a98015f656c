import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The project's root, found from this file whether it runs as TypeScript under vitest (src/) or
 * compiled (dist/src/). Pool threads and task modules always load from dist/: Node 20 cannot run
 * TypeScript, so both threads of a job see the same compiled code.
 */
function findRoot (from: string): string {
  let dir = from
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error(`no package.json above ${from}`)
    dir = parent
  }
  return dir
}

export const projectRoot = findRoot(dirname(fileURLToPath(import.meta.url)))
export const distDir = join(projectRoot, 'dist')
export const taskDirs = Object.freeze({ cpu: join(distDir, 'cpu-tasks'), io: join(distDir, 'io-tasks') })
/** The `fault` task, loaded only with FAULT_TASKS=on. */
export const faultTaskDir = join(distDir, 'fault-tasks')
export const poolWorkerFile = join(distDir, 'src', 'placement', 'worker.js')
export const delayServiceFile = join(distDir, 'src', 'upstream', 'main.js')
