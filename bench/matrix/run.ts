import { availableParallelism, cpus, release, totalmem, type } from 'node:os'
import { performance } from 'node:perf_hooks'
import { startDelayService } from '../../src/upstream/spawn.js'
import { QUIET } from '../lib/proc.js'
import { backendsAvailable, startPostgres, startRedis } from '../../test/support/backends.js'
import { runRow, type CellResult, type Measurement } from './cell.js'
import { MIXED_CELL, type Plan } from './plan.js'
import { directRate, measureReferences, startNaive, type References } from './references.js'
import type { RoundOrder } from './order.js'
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
 * matrix gets a fresh server per model, all of them up together and measured in alternation, so
 * that drift in the machine touches every model alike. The naive server the mixed load is
 * compared with is measured in that row, beside the models, for the same reason.
 */
export async function runMatrix (plan: Plan, progress: (line: string) => void): Promise<MatrixRun> {
  const started = performance.now()
  const upstream = await startDelayService()
  const backends = plan.cells.some((c) => c.row === 'users') ? await userBackends(progress) : undefined
  try {
    const results: CellResult[] = []
    const rows = [...new Set(plan.cells.map((c) => c.row))].filter((row) => row !== 'users' || backends !== undefined)
    let naiveMixed: Measurement[] | undefined
    // The CPU ceiling (cores x fib 30 called directly), read for half its time on either side of
    // the CPU row: this machine's speed drifts by tens of percent within minutes, and once, half an
    // hour after the row, it read 106/s on a slow moment while the row's trees spent 7.8-9.8 ms of
    // CPU a fib 30.
    const directFibPerSEach: number[] = []
    const directMs = (plan.name === 'full' ? 3000 : 1000) / 2
    let done = 0
    let cellOrder: RoundOrder | undefined
    for (const row of rows) {
      const cells = plan.cells.filter((c) => c.row === row)
      const mixed = cells.findIndex((c) => c.id === MIXED_CELL)
      const withNaive = plan.references && mixed >= 0
      const readsDirect = plan.references && row === 'cpu'
      progress(`[${++done}/${rows.length}] ${row} (${cells.length} cell${cells.length > 1 ? 's' : ''}): ${[...plan.models, ...(withNaive ? ['naive'] : [])].join(', ')}, alternated`)
      if (readsDirect) directFibPerSEach.push(directRate(directMs))
      const measured = await runRow(
        plan.models, cells, plan, upstream.url, row === 'users' ? backends?.env : undefined, withNaive ? [() => startNaive(upstream.url)] : []
      )
      if (readsDirect) directFibPerSEach.push(directRate(directMs))
      results.push(...measured.results)
      cellOrder ??= measured.order // every row has the same models and at most one reference
      // The naive server takes the row's other cell too, as every server of a row does; only this one is compared.
      if (withNaive) naiveMixed = measured.beside[0]?.[mixed] ?? []
    }
    let references: References | undefined
    if (naiveMixed !== undefined && directFibPerSEach.length > 0) {
      references = await measureReferences(plan, upstream.url, { naiveMixed, directFibPerSEach }, (step) => progress(`references: ${step}`))
    }
    const m = machine()
    return {
      measuredAt: new Date().toISOString(),
      durationS: Math.round((performance.now() - started) / 1000),
      machine: m,
      plan,
      results,
      references,
      verdict: verdict(results, m.cores, plan.windowS),
      cellOrder,
      quiet: QUIET
    }
  } finally {
    await Promise.all([upstream.stop(), backends?.destroy()])
  }
}

/**
 * Throwaway PostgreSQL and Redis for the user-service row (and a task of the user's that uses
 * them), or undefined where they are not installed.
 */
export async function userBackends (progress: (line: string) => void): Promise<{
  env: Record<string, string>
  destroy: () => Promise<void>
} | undefined> {
  const available = backendsAvailable()
  if (!available.postgres || !available.redis) {
    progress('no PostgreSQL or Redis installed (apt-get install postgresql redis-server): the user-service jobs are skipped')
    return undefined
  }
  const [postgres, redis] = await Promise.all([startPostgres(), startRedis()])
  return {
    env: { DATABASE_URL: postgres.url, REDIS_URL: redis.url },
    destroy: async () => { await Promise.all([postgres.destroy(), redis.destroy()]) }
  }
}
