/** `npm run load -- ...`: the load client from the command line. Prints a summary; --out writes the report. */
import { writeFile } from 'node:fs/promises'
import { parseOptions, USAGE, type LoadOptions } from './options.js'
import { runLoad } from './run.js'

let options: LoadOptions
try {
  options = parseOptions(process.argv.slice(2))
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`)
  process.exit(2)
}

const what = options.count !== undefined ? `${options.count} jobs` : `${options.duration} s`
process.stderr.write(`${options.transport} ${options.encoding}, ${options.connections} connections x ${options.inFlight} in flight, ` +
  `${options.rate === undefined ? 'closed loop' : `${options.rate} jobs/s`}, ${what} -> ${options.url}\n`)
const report = await runLoad(options, options.progress
  ? (p) => process.stderr.write(`  ${p.elapsedS}s sent ${p.sent} ok ${p.ok} failed ${p.failed} in flight ${p.inFlight}\n`)
  : undefined)

const l = report.latencyMs
const more = [
  report.timedOut > 0 ? `${report.timedOut} timed out` : '',
  report.abandoned > 0 ? `${report.abandoned} abandoned` : '',
  report.skipped > 0 ? `${report.skipped} not sent (every connection at its in-flight cap)` : '',
  report.retried > 0 ? `${report.retried} sent again` : ''
].filter((s) => s !== '')
console.log(`${report.ok} ok, ${report.failed} failed${more.map((s) => `, ${s}`).join('')} in ${report.seconds} s: ${report.jobsPerS} jobs/s`)
console.log(`latency ms: p50 ${l.p50}  p90 ${l.p90}  p99 ${l.p99}  max ${l.max}`)
const { server, sendLate } = report.parts ?? {}
if (server !== undefined) {
  console.log(`of which the server's own (Server-Timing) ms: p50 ${server.ok.p50}  p99 ${server.ok.p99}` +
    (server.failed.count > 0 ? `; errors p50 ${server.failed.p50}  p99 ${server.failed.p99}` : ''))
}
if (sendLate !== undefined) console.log(`sent late by this client ms: p50 ${sendLate.p50}  p99 ${sendLate.p99}  max ${sendLate.max}`)
if (report.failed > 0) console.log(`errors: ${Object.entries(report.errors).map(([code, n]) => `${code} ${n}`).join(', ')}`)
if (report.rss !== undefined) console.log(`rss of pid ${options.pid} and its children: ${(report.rss.startBytes / 2 ** 20).toFixed(1)} MiB at start, ${(report.rss.peakBytes / 2 ** 20).toFixed(1)} MiB at peak`)
if (options.out !== undefined) await writeFile(options.out, JSON.stringify(report, null, 2) + '\n')
