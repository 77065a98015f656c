import { statSync, utimesSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { projectRoot } from '../src/paths.js'
import { orphanOutputs, staleSources } from './support/fresh-build.js'

describe('the build the tests run', () => {
  it('is as new as every source once the global setup has run', () => {
    expect(staleSources()).toEqual([])
    expect(orphanOutputs()).toEqual([])
  })

  it('is seen as stale when a task is edited after it was built', () => {
    const task = join(projectRoot, 'cpu-tasks', 'fib.ts')
    const { atime, mtime } = statSync(task)
    try {
      const later = new Date(Date.now() + 60_000)
      utimesSync(task, later, later)
      expect(staleSources()).toEqual([task])
    } finally {
      utimesSync(task, atime, mtime)
    }
  })
})
