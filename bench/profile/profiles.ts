/** Reading V8's CPU profiles (`--cpu-prof`) into self time per layer of the server (classify.ts). */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { classify, LAYERS, type Layer } from './classify.js'

export interface ProfileNode { id: number, callFrame: { functionName: string, url: string }, children?: number[] }
export interface CpuProfile {
  nodes: ProfileNode[],
  samples: number[],
  timeDeltas: number[],
  startTime: number,
  endTime: number
}

/** Self time (µs) per layer over the whole profile. */
export function selfTimeByLayer (profile: CpuProfile): Record<Layer, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const totals = Object.fromEntries(LAYERS.map((l) => [l, 0])) as Record<Layer, number>
  const debug = new Map<string, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i] as number)
    if (node === undefined) continue
    const layer = classify(node.callFrame)
    totals[layer] += profile.timeDeltas[i] ?? 0
    if (process.env.PROFILE_DEBUG !== undefined && layer === process.env.PROFILE_DEBUG) {
      const key = `${node.callFrame.functionName} ${node.callFrame.url}`
      debug.set(key, (debug.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0))
    }
  }
  if (debug.size > 0) process.stderr.write([...debug].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([k, v]) => `${Math.round(v / 1000)} ms ${k}`).join('\n') + '\n')
  return totals
}

/** A request's (or a profile's) CPU on the main thread: every layer but idle and start-up. */
export const busyOf = (totals: Record<Layer, number>): number =>
  LAYERS.reduce((sum, l) => l === 'idle' || l === 'start-up (loading modules)' ? sum : sum + totals[l], 0)

/** A main thread's profile: Node names each `CPU.<date>.<time>.<pid>.<thread id>.<n>.cpuprofile`, thread 0 the main. */
const MAIN_THREAD_PROFILE = /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/

/**
 * The layers of the busiest of the `expected` main threads' profiles the server's processes write
 * to `dir` as they exit: a cluster's worker, which served, rather than its primary. A pool thread
 * that inherits `--cpu-prof` (the naive server's Piscina is given no execArgv) writes its own,
 * which is left out. A cluster's primary may exit before its worker has written its profile, so
 * they are waited for (up to 10 s, then whatever is there is read), and read again while one is
 * still being written.
 */
export async function busiestProfile (dir: string, expected: number): Promise<Record<Layer, number> | undefined> {
  const until = performance.now() + 10_000
  for (;;) {
    const files = (await readdir(dir)).filter((f) => MAIN_THREAD_PROFILE.test(f))
    const late = performance.now() > until
    if (files.length >= expected || late) {
      try {
        const profiles = await Promise.all(files.map(async (f) => selfTimeByLayer(JSON.parse(await readFile(join(dir, f), 'utf8')) as CpuProfile)))
        return profiles.sort((a, b) => busyOf(b) - busyOf(a))[0]
      } catch {} // one still being written
    }
    if (late) return undefined
    await sleep(100)
  }
}
