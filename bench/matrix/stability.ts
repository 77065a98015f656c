/**
 * Whether full runs of the matrix agree with each other: for each row, the winner (or the tie) and
 * the recommended model in every run, and for each cell, every model's jobs/s in every run with its
 * spread over that run's windows. `npm run bench -- --stability` writes it from the runs kept under
 * bench/results/runs/.
 */
import type { Mode } from '../../src/config.js'
import type { MatrixRun } from './report.js'
import { table } from './report.js'
import { fmt, fmtSpread, spread } from './stats.js'
import type { VerdictRow } from './verdict.js'

/** What a run said of a row, in a few words: `threads`, or a tie of `a`, `b` (recommended `a`). */
export function said (v: VerdictRow): string {
  return v.decided ? `\`${v.winner}\`` : `tie: ${v.tied.map((m) => `\`${m}\``).join(', ')}; \`${v.recommended}\` recommended`
}

export interface RowAcrossRuns {
  workload: string
  /** Per run, the row's verdict, or undefined where that run did not measure the row. */
  verdicts: Array<VerdictRow | undefined>
  /** Every run that measured the row named the same winner, decided each time. */
  sameWinner: boolean
  /** Every run that measured the row recommended the same model. */
  sameRecommended: boolean
  /** In a sentence: what the runs say together. */
  summary: string
}

/** Each row of the classic matrix across the runs, in the order of the first run that has it. */
export function rowsAcrossRuns (runs: MatrixRun[]): RowAcrossRuns[] {
  const workloads = [...new Set(runs.flatMap((r) => r.verdict.map((v) => v.workload)))]
  return workloads.map((workload) => {
    const verdicts = runs.map((r) => r.verdict.find((v) => v.workload === workload))
    const measured = verdicts.filter((v): v is VerdictRow => v !== undefined)
    const winners = new Set(measured.map((v) => v.decided ? v.winner : 'tie'))
    const recommended = new Set(measured.map((v) => v.recommended))
    const sameWinner = winners.size === 1 && !winners.has('tie')
    const sameRecommended = recommended.size === 1
    const n = measured.length
    const count = (m: Mode): number => measured.filter((v) => v.recommended === m).length
    const byCount = [...recommended].sort((a, b) => count(b) - count(a))
    const summary = n < 2
      ? `measured in ${n} run${n === 1 ? '' : 's'} only: stability not known`
      : sameWinner
        ? `\`${measured[0]?.winner as Mode}\` wins in all ${n} runs`
        : sameRecommended
          ? `\`${measured[0]?.recommended as Mode}\` recommended in all ${n} runs, ` +
            `${winners.has('tie') ? `a tie in ${measured.filter((v) => !v.decided).length} of them` : 'by different margins'}`
          : `**the answer changes between runs**: ${byCount.map((m) => `\`${m}\` in ${count(m)} of ${n}`).join(', ')}; ` +
            'read this row as a tie of those'
    return { workload, verdicts, sameWinner, sameRecommended, summary }
  })
}

/** The Markdown report: rows across runs, then every cell's jobs/s in every run. */
export function stabilityMarkdown (runs: MatrixRun[], sources: string[]): string {
  const out: string[] = []
  const label = (r: MatrixRun, i: number): string => `run ${i + 1} (${r.measuredAt.slice(0, 16).replace('T', ' ')})`
  out.push('# The matrix across runs\n')
  out.push(`${runs.length} full runs of \`npm run bench\` on the same machine, compared: ${sources.map((s) => `\`${s}\``).join(', ')}. ` +
    'A row is stable when every run names the same winner; where the runs tie or disagree, the recommendation is only as good as the column that says so.\n')
  out.push('## Each row\'s answer in each run\n')
  const rows = rowsAcrossRuns(runs)
  const classic = (r: RowAcrossRuns): string => {
    const measured = r.verdicts.filter((v): v is VerdictRow => v !== undefined)
    return `\`${measured[0]?.classic ?? '?'}\`: wins or ties in ${measured.filter((v) => v.agrees).length} of ${measured.length}`
  }
  out.push(table(
    ['workload', ...runs.map(label), 'across the runs', 'the classic answer'],
    rows.map((r) => [r.workload, ...r.verdicts.map((v) => v === undefined ? 'not measured' : said(v)), r.summary, classic(r)])
  ))
  out.push('\n## Every cell in every run\n')
  out.push('Jobs/s, the mean of the run\'s windows with their (min-max); the last column is the spread of the runs\' means: ' +
    '(highest - lowest) / lowest.\n')
  const ids = [...new Set(runs.flatMap((r) => r.results.map((c) => c.cell.id)))]
  const models = [...new Set(runs.flatMap((r) => r.plan.models))]
  const cellRows: string[][] = []
  for (const id of ids) {
    for (const model of models) {
      const perRun = runs.map((r) => r.results.find((c) => c.cell.id === id && c.model === model))
      const means = perRun.flatMap((c) => c === undefined ? [] : [spread(c.runs.map((m) => m.jobsPerS)).mean])
      const across = spread(means)
      const drift = means.length > 1 && across.min > 0 ? `${fmt((across.max - across.min) / across.min * 100)}%` : 'n/a'
      cellRows.push([id, `\`${model}\``, ...perRun.map((c) => c === undefined ? 'not measured' : fmtSpread(spread(c.runs.map((m) => m.jobsPerS)))), drift])
    }
  }
  out.push(table(['cell', 'model', ...runs.map(label), 'between runs'], cellRows))
  return out.join('\n') + '\n'
}
