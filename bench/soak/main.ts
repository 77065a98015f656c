/**
 * `npm run soak -- --minutes N`: the soak (run.ts says what it does and when it passes). Prints
 * progress to stderr, writes soak.json, soak.md and charts/soak-rss.svg to bench/results/ (or
 * `--out DIR`), and exits 1 when the run did not pass.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { TopLevelSpec } from 'vega-lite'
import { projectRoot } from '../../src/paths.js'
import { renderSvg } from '../matrix/charts.js'
import { fmt } from '../matrix/stats.js'
import { runSoak, SOAK_DEFAULTS, type SoakReport } from './run.js'
import { exitCleanlyOnSignals } from '../../test/support/stop-on-signal.js'

exitCleanlyOnSignals()

const { values } = parseArgs({
  options: { minutes: { type: 'string', default: '60' }, out: { type: 'string' } },
  strict: true
})
const minutes = Number(values.minutes)
if (!Number.isFinite(minutes) || minutes <= 0) {
  process.stderr.write('--minutes must be a positive number\n')
  process.exit(2)
}
const dir = values.out ?? join(projectRoot, 'bench', 'results')
const started = Date.now()
const report = await runSoak({ ...SOAK_DEFAULTS, minutes }, (line) =>
  process.stderr.write(`  ${Math.round((Date.now() - started) / 1000)}s ${line}\n`))

const mib = (b: number | undefined): string => b === undefined ? '-' : fmt(b / 2 ** 20)
const table = (head: string[], rows: Array<Array<string | number>>): string =>
  [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')

function markdown (r: SoakReport): string {
  const o = r.options
  const byCode: Record<string, number> = {}
  for (const { report } of r.streams) {
    for (const [code, n] of Object.entries(report.errors)) byCode[code] = (byCode[code] ?? 0) + n
  }
  const last = new Map<number, SoakReport['samples'][number]>()
  const first = new Map<number, SoakReport['samples'][number]>()
  for (const s of r.samples) {
    if (!first.has(s.pid)) first.set(s.pid, s)
    last.set(s.pid, s)
  }
  return [
    '# The soak',
    '',
    `${r.at}, \`npm run soak -- --minutes ${o.minutes}\`, Node ${r.node}: a \`hybrid\` server with its defaults` +
    `${r.userService ? ', a throwaway PostgreSQL and Redis' : ''}, offered ${fmt(r.ratePerS)} jobs/s ` +
    `(${o.loadShare} x the ${fmt(r.capacityPerS)} jobs/s it answered under closed-loop saturation), open loop, in four streams ` +
    '(HTTP JSON, HTTP MessagePack, WebSocket JSON, WebSocket MessagePack); a worker SIGKILLed every ' +
    `${o.killEveryS / 60} min, a rolling restart (SIGHUP) every ${o.hupEveryS / 60} min; every process sampled every ${o.sampleEveryS} s. ` +
    'A job whose connection failed under it (its worker was killed) is sent again once.',
    '',
    `**${r.passed ? 'Passed' : 'Failed'}**${r.reasons.length === 0 ? '' : `: ${r.reasons.join('; ')}`}.`,
    '',
    '## Jobs',
    '',
    table(['stream', 'sent', 'answered ok', 'errors (by code, below)', 'timed out', 'abandoned', 'sent again', 'p50 / p99 ms'],
      r.streams.map(({ name, report: l }) =>
        [name, l.sent, l.ok, l.failed, l.timedOut, l.abandoned, l.retried, `${l.latencyMs.p50} / ${l.latencyMs.p99}`])),
    '',
    `Errors by code, all streams: ${Object.entries(byCode).map(([c, n]) => `${c} ${n}`).join(', ') || 'none'}. ` +
    `Lost (sent, no answer even after the retry): ${r.lost}; not answered within 30 s: ${r.timedOut}; ` +
    `given up on long after every timeout: ${r.abandoned}. Never reached a server (connection refused, no worker listening): ${r.refused}. ` +
    `Drains that reached their deadline and cut connections: ${r.serverLog.filter((l) => l.msg.startsWith('drain deadline')).length}. ` +
    `At the end, SIGTERM: the server exited ${r.stop.signal === null ? `with code ${r.stop.code}` : `on ${r.stop.signal}`} in ${fmt(r.stop.ms)} ms.`,
    '',
    'The mix (weights): ' + r.mix.map((j) => `\`${j.task}\` ${JSON.stringify(j.input)} x${j.weight}`).join(', ') +
    '; `fib` n=99 is the 1% of bad input, answered 400 `BAD_INPUT`.',
    '',
    '## Events',
    '',
    table(['at (min)', 'what', 'pid'], r.events.map((e) => [fmt(e.atS / 60), e.what, e.pid])),
    '',
    '## Memory, per process',
    '',
    'Growth is the least-squares slope of RSS, with two standard errors of it (its noise, about a 95% interval): ' +
    `for the primary and the delay service over their samples past the first ${fmt(o.warmS / 60)} min; for a worker over ` +
    `the samples past that in which it used at least a tenth of a core, from ${fmt(o.settleS / 60)} min after it first did ` +
    '(a replacement gets only new connections, so it may idle at its start-up size for minutes, then reach its working ' +
    'size within one as load arrives). `workers` is every judged worker sample together: whether a loaded worker late ' +
    'in the run holds more memory than one early in it. A process fails when it grows faster than 1 MB/min beyond its ' +
    'noise; a worker that lived too short to tell is shown as such, but the primary, the delay service and the workers ' +
    'as a class must tell.',
    '',
    table(['process', 'pid', 'samples judged', 'from - to (min)', 'RSS first / last (MiB)', 'growth (MB/min)', 'verdict', 'heap used last (MiB)', 'handles last', 'fds last'],
      [...r.growth.map((g) => [g.role, g.pid === 0 ? '-' : g.pid, g.samples, `${fmt(g.fromS / 60)} - ${fmt(g.toS / 60)}`,
        g.pid === 0 ? '-' : `${mib(first.get(g.pid)?.rssBytes)} / ${mib(last.get(g.pid)?.rssBytes)}`, `${g.mbPerMin} ± ${g.noise}`, g.verdict,
        mib(last.get(g.pid)?.heapUsedBytes), last.get(g.pid)?.activeHandles ?? '-', last.get(g.pid)?.fds ?? '-']),
      ...r.unjudged.map((u) => [u.role, u.pid, `0 of ${u.samples}`, '-',
        `${mib(first.get(u.pid)?.rssBytes)} / ${mib(last.get(u.pid)?.rssBytes)}`, '-', `not judged: ${u.why}`,
        mib(last.get(u.pid)?.heapUsedBytes), last.get(u.pid)?.activeHandles ?? '-', last.get(u.pid)?.fds ?? '-'])]),
    '',
    '![RSS of each process over the run](charts/soak-rss.svg)',
    ''
  ].join('\n')
}

function chart (r: SoakReport): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: { font: 'sans-serif' },
    title: 'RSS of each process of the server tree over the soak',
    data: { values: r.samples.map((s) => ({ minute: s.atS / 60, MiB: s.rssBytes / 2 ** 20, process: `${s.role} ${s.pid}` })) },
    width: 640,
    height: 300,
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'minute', type: 'quantitative', title: 'minutes' },
      y: { field: 'MiB', type: 'quantitative', title: 'RSS (MiB)' },
      color: { field: 'process', type: 'nominal', title: null }
    }
  }
}

await mkdir(join(dir, 'charts'), { recursive: true })
await writeFile(join(dir, 'soak.json'), JSON.stringify(report, null, 2) + '\n')
await writeFile(join(dir, 'soak.md'), markdown(report))
await writeFile(join(dir, 'charts', 'soak-rss.svg'), await renderSvg(chart(report)))
process.stdout.write(markdown(report))
process.exit(report.passed ? 0 : 1)
