import { availableParallelism, cpus, release, totalmem, type } from 'node:os'
import { performance } from 'node:perf_hooks'
import { startDelayService } from '../../src/upstream/spawn.js'
import { runCell, type CellResult } from './cell.js'
import type { Plan } from './plan.js'
import { measureReferences, type References } from './references.js'
import type { MatrixRun } from './report.js'
import { verdict } from './verdict.js'

export function machine (): MatrixRun['machine'] {
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    os: `${type()} ${release()}`
  }
}

/**
 * Every model on every cell of the plan, then the references, all against one delay service of
 * their own (a process apart, shared so that every model calls the same one). Cells go model by
 * model within a cell, so that drift in the machine touches every model alike.
 */
export async function runMatrix (plan: Plan, progress: (line: string) => void): Promise<MatrixRun> {
  const started = performance.now()
  const upstream = await startDelayService()
  try {
    const results: CellResult[] = []
    const total = plan.cells.length * plan.models.length
    for (const cell of plan.cells) {
      for (const model of plan.models) {
        progress(`[${results.length + 1}/${total}] ${cell.id}: ${model}`)
        results.push(await runCell(model, cell, plan, upstream.url))
      }
    }
    let references: References | undefined
    const mixed = plan.cells.find((c) => c.id === 'mixed io+cpu')
    if (plan.references && mixed !== undefined) references = await measureReferences(plan, upstream.url, mixed, (step) => progress(`references: ${step}`))
    const m = machine()
    return {
      measuredAt: new Date().toISOString(),
      durationS: Math.round((performance.now() - started) / 1000),
      machine: m,
      plan,
      results,
      references,
      verdict: verdict(results, m.cores)
    }
  } finally {
    await upstream.stop()
  }
}
