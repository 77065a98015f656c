/**
 * vitest's global setup: pool threads, task modules and the server's child processes run the
 * compiled JavaScript in dist/ (Node 20 cannot run TypeScript), so a test run after an edit would
 * silently test the build before it. Before any test runs, this compares every source with its
 * output: when one is missing or older, it rebuilds (`tsc -p tsconfig.build.json`, incremental),
 * and a build that fails stops the run with tsc's errors. Outputs whose source is gone (a deleted
 * task would still be discovered in dist/) are removed.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs'
import { join, relative } from 'node:path'
import { projectRoot } from '../../src/paths.js'

const SOURCE_DIRS = ['src', 'cpu-tasks', 'io-tasks', 'fault-tasks', 'bench', 'test/support']
const dist = join(projectRoot, 'dist')

function files (dir: string, ext: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(ext) && !e.name.endsWith(`.d${ext}`))
    .map((e) => join(e.parentPath, e.name))
}

/** Sources with no output, or an output older than they are. */
export function staleSources (): string[] {
  return SOURCE_DIRS.flatMap((dir) => files(join(projectRoot, dir), '.ts')).filter((source) => !source.endsWith('fresh-build.ts')).filter((source) => {
    const output = join(dist, relative(projectRoot, source)).replace(/\.ts$/, '.js')
    return !existsSync(output) || statSync(output).mtimeMs < statSync(source).mtimeMs
  })
}

/** Outputs in dist/ whose source no longer exists. */
export function orphanOutputs (): string[] {
  return SOURCE_DIRS.flatMap((dir) => files(join(dist, dir), '.js'))
    .filter((output) => !existsSync(join(projectRoot, relative(dist, output)).replace(/\.js$/, '.ts')))
}

export default function setup (): void {
  for (const orphan of orphanOutputs()) {
    for (const file of [orphan, `${orphan}.map`, orphan.replace(/\.js$/, '.d.ts')]) rmSync(file, { force: true })
  }
  const stale = staleSources()
  if (stale.length === 0) return
  process.stderr.write(`dist/ is older than ${stale.length} source file(s) (${relative(projectRoot, stale[0] as string)}, ...): building\n`)
  try {
    execFileSync(process.execPath, [join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
      { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    const out = (err as { stdout?: Buffer }).stdout?.toString() ?? ''
    throw new Error(`the build failed, so no test would run the code as it is now:\n${out}`)
  }
  // tsc may leave an output untouched when nothing in it changed: mark it as built, so that the
  // next run does not build again for it.
  const now = new Date()
  for (const source of staleSources()) {
    const output = join(dist, relative(projectRoot, source)).replace(/\.ts$/, '.js')
    if (existsSync(output)) utimesSync(output, now, now)
  }
}
