/** The ratios this server holds itself to, from one overhead run (measure.ts), per client. */
import type { Client, Overhead, Pair } from './measure.js'
import { fmt, fmtSpread, median, ratio, spread } from '../matrix/stats.js'

/** The pair that reads `GET /health` against plain Fastify giving the same answer: context for its figure. */
export const HEALTH_SAME_ANSWER = 'GET /health, plain Fastify giving the same answer'

export interface Figure {
  name: string
  client: Client | 'in process'
  value: number
  target: string
  met: boolean
  /** How the value was reached, in figures. */
  how: string
}

/**
 * A pair's ratio, ours against `reference` (a function of the reference's rate): the median of the
 * rounds' ratios, each from two windows back to back, with their spread; from a run that kept no
 * rounds, the ratio of the means.
 */
function pairRatio (p: Pair, reference: (rate: number, round?: number) => number): { value: number, how: string } {
  const rounds = p.rounds
  if (rounds === undefined || rounds.ours.length === 0) return { value: ratio(p.ours.mean, reference(p.reference.mean)), how: 'ratio of the means' }
  const each = rounds.ours.map((ours, i) => ratio(ours, reference(rounds.reference[i] as number, i)))
  const { n, min, max } = spread(each)
  const range = n > 1 ? ` (${fmt(min)}-${fmt(max)})` : ''
  return { value: median(each), how: `median of ${each.length} rounds' ratios${range}` }
}

/** What the pair's servers refused (503 OVERLOADED), where either did: a rate counts only what was answered. */
function refusals (p: Pair): string {
  const refused = p.refused
  if (refused === undefined) return ''
  const [ours, reference] = [spread(refused.ours), spread(refused.reference)]
  if (ours.max === 0 && reference.max === 0) return ''
  return `; refused ${fmtSpread(ours)} / ${fmtSpread(reference)} per s`
}

const at = (pairs: Pair[], name: string, client: Client): Pair | undefined => pairs.find(
  (p) => p.name === name && p.client === client
)

export function overheadFigures (run: Overhead): Figure[] {
  const out: Figure[] = []
  const clients = [...new Set(run.pairs.map((p) => p.client))]
  for (const client of clients) {
    const simple = (name: string, label: string, min: number): Figure | undefined => {
      const p = at(run.pairs, name, client)
      if (p === undefined) return undefined
      const { value, how } = pairRatio(p, (rate) => rate)
      const figure = { name: label, client, value, target: `>= ${min}`, met: value >= min, how: `${how}; ${fmtSpread(p.ours)} / ${fmtSpread(p.reference)} per s${refusals(p)}` }
      out.push(figure)
      return figure
    }
    const health = simple('GET /health', '`GET /health` vs plain Fastify', 0.9)
    const same = at(run.pairs, HEALTH_SAME_ANSWER, client)
    if (health !== undefined && same !== undefined) {
      // Context, not a second target: how much of the gap is the contract's longer answer.
      const control = pairRatio(same, (rate) => rate)
      health.how += `. Against plain Fastify giving this server's answer (its fields, with a response schema): ${fmt(control.value)}, ${control.how}; ${fmtSpread(same.ours)} / ${fmtSpread(same.reference)} per s`
    }
    simple('trivial inline job', 'trivial inline job vs plain Fastify with a body schema', 0.75)
    const pool = at(run.pairs, 'trivial job, pool against inline', client)
    if (pool !== undefined) {
      const a = pool.reference.mean
      // Raw Piscina of each round where it was taken in each (Pair.alongside); else the run's one reading.
      const raw = pool.alongside
      const b = raw === undefined || raw.length === 0 ? run.rawPiscinaPerS : spread(raw).mean
      const rawAt = (round: number | undefined): number => round === undefined ? b : raw?.[round] ?? b
      const composed = (inline: number, round?: number): number => 1 / (1 / inline + 1 / rawAt(round))
      const { value, how } = pairRatio(pool, composed)
      out.push({
        name: 'trivial pool job vs 1 / (1/inline job + 1/raw Piscina round trip)',
        client,
        value,
        target: '>= 0.8',
        met: value >= 0.8,
        how: `${how}, each against its round's inline job${raw === undefined ? '' : ' and raw Piscina'}; ` +
          `means ${fmtSpread(pool.ours)} per s / (1 / (1/${fmt(a)} + 1/${fmt(b)}) = ${fmt(composed(a))})${refusals(pool)}`
      })
    }
    for (const n of [25, 30]) {
      simple(`fib ${n}, 8 connections`, `\`hybrid\` fib ${n} vs the naive cluster + Fastify + Piscina`, 0.95)
      simple(`fib ${n}, 8 connections, with 20 connections of sleep 20 ms beside`, `\`hybrid\` fib ${n} with I/O beside vs the naive server`, 0.95)
    }
  }
  const c = run.cpuCeiling
  const ceiling = c.directPerS * c.cores
  const value = ratio(c.oursPerS, ceiling)
  out.push({
    name: `\`hybrid\` fib 30 vs ${c.cores} cores x the direct single-thread rate`,
    client: 'load client',
    value,
    target: '>= 0.93',
    met: value >= 0.93,
    how: `${fmt(c.oursPerS)} / (${c.cores} x ${fmt(c.directPerS)}), direct rate measured in windows alternating with ours. ` +
      `The same cores running fib 30 on ${c.cores} bare threads at once gave ${fmt(c.parallelPerS)} (${fmt(ratio(c.parallelPerS, ceiling))} of ${c.cores} x direct), ` +
      `so this server reached ${fmt(ratio(c.oursPerS, c.parallelPerS))} of what the machine's cores give together; ` +
      `the load client used ${fmt(c.clientCpu)} of a core and the server tree ${fmt(c.serverCpu)} cores` +
      (c.serverLoopsCpu === undefined ? '' : `, ${fmt(c.serverLoopsCpu)} of them in its event loops`) +
      (c.naivePerS === undefined || c.naiveCpu === undefined || c.naiveLoopsCpu === undefined
        ? ''
        : `. The naive cluster + Fastify + Piscina server, in the same alternation: ${fmt(c.naivePerS)} ` +
          `(${fmt(ratio(c.naivePerS, ceiling))} of ${c.cores} x direct), its tree ${fmt(c.naiveCpu)} cores, ${fmt(c.naiveLoopsCpu)} in its event loops`)
  })
  for (const m of run.memory) {
    out.push({
      name: `RSS per WebSocket \`sleep\` job in flight, \`${m.mode}\`, warmed (KiB)`,
      client: 'load client',
      value: m.perJobKiB,
      target: '<= 3',
      met: m.perJobKiB <= 3,
      how: `${m.jobs.toLocaleString('en-US')} jobs of 1 s over 10 connections, second round: ${m.ok.toLocaleString('en-US')} answered in ${fmt(m.seconds)} s; first round ${fmt(m.firstRoundPerJobKiB)} KiB per job`
    })
  }
  return out
}

export function figuresTable (figures: Figure[]): string {
  const rows = figures.map((f) => `| ${f.name} | ${f.client} | ${fmt(f.value)} | ${f.target} | ${f.met ? 'yes' : '**no**'} | ${f.how} |`)
  return ['| figure | client | measured | target | met | from |', '|---|---|---|---|---|---|', ...rows].join('\n')
}
