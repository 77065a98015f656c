import { createReadStream } from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import type { Transform } from 'node:stream'

interface Sample { delay: number, cpu: number, memory: { rss: number } }

export interface DoctorSummary {
  report: string
  samples: number
  delayMs: { p50: number, p99: number, max: number }
  cpuPercent: { mean: number, max: number }
  /** What doctor itself concluded: its issue category and the issue of each measure. */
  issueCategory: string | undefined
  issues: string | undefined
}

const quantile = (sorted: number[], q: number): number => sorted[
  Math.min(sorted.length - 1, Math.floor(q * sorted.length))
] ?? Number.NaN
const round = (n: number): number => Math.round(n * 10) / 10

/**
 * Figures from the newest clinic doctor run under `dir`: its samples, decoded with doctor's own
 * decoder, and its verdict.
 */
export async function summarizeDoctor (dir: string): Promise<DoctorSummary | undefined> {
  const runs = (await readdir(dir).catch(() => [])).filter((f) => f.endsWith('.clinic-doctor'))
  const dated = await Promise.all(runs.map(async (f) => ({ f, t: (await stat(join(dir, f))).mtimeMs })))
  const newest = dated.sort((a, b) => b.t - a.t)[0]?.f
  if (newest === undefined) return undefined
  const id = newest.replace('.clinic-doctor', '')
  const Decoder = createRequire(import.meta.url)('@clinic/doctor/format/process-stat-decoder.js') as new () => Transform
  const samples: Sample[] = []
  await new Promise<void>((resolve, reject) => {
    createReadStream(join(dir, newest, `${id}.clinic-doctor-processstat`)).pipe(new Decoder())
      .on('data', (s: Sample) => samples.push(s)).on('end', resolve).on('error', reject)
  })
  const delays = samples.map((s) => s.delay).sort((a, b) => a - b)
  const cpu = samples.map((s) => s.cpu * 100)
  const html = await readFile(join(dir, `${newest}.html`), 'utf8').catch(() => '')
  return {
    report: join(dir, `${newest}.html`),
    samples: samples.length,
    delayMs: {
      p50: round(quantile(delays, 0.5)),
      p99: round(quantile(delays, 0.99)),
      max: round(delays[delays.length - 1] ?? Number.NaN)
    },
    cpuPercent: { mean: round(cpu.reduce((a, b) => a + b, 0) / Math.max(1, cpu.length)), max: round(Math.max(...cpu)) },
    issueCategory: /"issueCategory":"([a-z-]+)"/.exec(html)?.[1],
    issues: /"issues":(\{"delay":"[a-z]+","cpu":"[a-z]+"[^}]*\}[^}]*\})/.exec(html)?.[1]
  }
}
