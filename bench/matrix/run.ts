import { availableParallelism, cpus, release, totalmem, type } from 'node:os'
import { performance } from 'node:perf_hooks'
import { startDelayService } from '../../src/upstream/spawn.js'
import { runRow, type CellResult } from './cell.js'
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
 * their own (a process apart, shared so that every model calls the same one). Each row of the
 * matrix gets a fresh server per model; rows go model by model, so that drift in the machine
 * touches every model alike.
 */
export async function runMatrix (plan: Plan, progress: (line: string) => void): Promise<MatrixRun> {
  const started = performance.now()
  const upstream = await startDelayService()
  try {
    const results: CellResult[] = []
    const rows = [...new Set(plan.cells.map((c) => c.row))]
    let done = 0
    for (const row of rows) {
      const cells = plan.cells.filter((c) => c.row === row)
      for (const model of plan.models) {
        progress(`[${++done}/${rows.length * plan.models.length}] ${row} (${cells.length} cell${cells.length > 1 ? 's' : ''}): ${model}`)
        results.push(...await runRow(model, cells, plan, upstream.url))
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
