import { closeSync, openSync, readFileSync, readSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'

/**
 * The fields of a /proc stat line from the state on (field 3 of proc(5) at index 0): the command
 * name before them, in parentheses, may hold spaces, so they are the ones after the last ")".
 */
export function statFields (stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/** A process and its descendants, the root first, from /proc (Linux). */
export async function processTree (root: number): Promise<number[]> {
  const parentOf = new Map<number, number>()
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      parentOf.set(Number(entry), Number(statFields(await readFile(`/proc/${entry}/stat`, 'utf8'))[1]))
    } catch {} // exited meanwhile
  }
  const pids = [root]
  for (let i = 0; i < pids.length; i++) {
    for (const [pid, ppid] of parentOf) if (ppid === pids[i]) pids.push(pid)
  }
  return pids
}

/**
 * A process's resident memory from /proc/PID/status, or undefined once it is exiting: a zombie,
 * or a process past releasing its memory (the kernel drops the Vm lines with it).
 */
export function residentBytes (status: string): number | undefined {
  if (/^State:\s+[ZX]/m.test(status)) return undefined
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]
  return kb === undefined ? undefined : Number(kb) * 1024
}

/** Resident memory of a process and every descendant, in bytes. */
export async function processTreeRss (root: number): Promise<{ bytes: number, pids: number[] }> {
  const pids = await processTree(root)
  let bytes = 0
  for (const pid of pids) {
    try {
      const status = await readFile(`/proc/${pid}/status`, 'utf8')
      bytes += residentBytes(status) ?? 0
    } catch {}
  }
  return { bytes, pids }
}

/**
 * Samples the resident memory of these processes together every `everyMs` until stopped; reports
 * the first and the peak sample. The caller reads the tree once (processTree), before its load:
 * this runs beside the load and must cost the machine next to nothing. Each process's
 * /proc/<pid>/status is opened once and read again in place, synchronously: about 70 us of CPU a
 * process here, where a scan of /proc for the tree and a readFile of each file (about 250 us for
 * one /proc file, its buffer and its trips through libuv's pool) took 18 ms a sample, and ten
 * samples a second took 0.2-0.35 of a core from the server being measured (bench/README.md).
 */
export function sampleRss (pids: readonly number[], everyMs = 100): {
  stop: () => Promise<{ startBytes: number, peakBytes: number, pids: number }>
} {
  const files = pids.flatMap((pid) => {
    try {
      return [openSync(`/proc/${pid}/status`, 'r')]
    } catch {
      return [] // exited meanwhile
    }
  })
  const buffer = Buffer.alloc(16 * 1024)
  const sample = (): number => {
    let bytes = 0
    for (const fd of files) {
      try {
        bytes += residentBytes(buffer.toString('latin1', 0, readSync(fd, buffer, 0, buffer.length, 0))) ?? 0
      } catch {} // exited since: its memory is no longer the tree's
    }
    return bytes
  }
  const startBytes = sample()
  let peakBytes = startBytes
  const timer = setInterval(() => { peakBytes = Math.max(peakBytes, sample()) }, everyMs)
  return {
    stop: async () => {
      clearInterval(timer)
      peakBytes = Math.max(peakBytes, sample())
      for (const fd of files) closeSync(fd)
      return { startBytes, peakBytes, pids: files.length }
    }
  }
}

const CLOCK_TICKS_PER_S = 100 // USER_HZ: 100 on every Linux that Node supports

/** CPU time (user + system, every thread) used so far by each of these processes, in seconds (0 for one gone). */
export async function cpuSecondsEach (pids: number[]): Promise<number[]> {
  return await Promise.all(pids.map(async (pid) => {
    try {
      const fields = statFields(await readFile(`/proc/${pid}/stat`, 'utf8'))
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S // utime, stime: fields 14 and 15 of stat(5)
    } catch {
      return 0 // exited meanwhile
    }
  }))
}

/**
 * CPU time used so far by the main threads only (a Node process's event loop) of these processes
 * together, in seconds: what their other threads (pool threads, V8's and libuv's helpers) used is
 * the process's total less this.
 */
export async function mainThreadCpuSeconds (pids: number[]): Promise<number> {
  const each = await Promise.all(pids.map(async (pid) => {
    try {
      const fields = statFields(await readFile(`/proc/${pid}/task/${pid}/stat`, 'utf8'))
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S
    } catch {
      return 0
    }
  }))
  return each.reduce((a, b) => a + b, 0)
}

/** CPU time (user + system, every thread) used so far by these processes together, in seconds. */
export async function cpuSeconds (pids: number[]): Promise<number> {
  return (await cpuSecondsEach(pids)).reduce((a, b) => a + b, 0)
}

/** CPU time (user + system, every thread) used so far by a process and its descendants, in seconds. */
export async function processTreeCpuSeconds (root: number): Promise<number> {
  return await cpuSeconds(await processTree(root))
}

/** CPU seconds used over a stretch of `seconds`: by a server tree in all, by its event loops, and by this process. */
export interface CpuUsed {
  seconds: number
  all: number
  loops: number
  /** This process: where a bench runs its load client, the client's CPU. */
  client: number
}

/**
 * Runs `run` and counts the CPU that a server tree (read once, before) and this process use from
 * `fromMs` after it starts (an onset not to count) until it ends. The tree's event loops are its
 * processes' main threads (mainThreadCpuSeconds); `all` less `loops` is its pool threads, V8's
 * and libuv's helpers and any child of the server.
 */
export async function meterCpu<T> (
  root: number, run: () => Promise<T>, fromMs = 0
): Promise<{ result: T, used: CpuUsed }> {
  const pids = await processTree(root)
  const read = async (): Promise<{ all: number, loops: number }> => {
    const [all, loops] = await Promise.all([cpuSeconds(pids), mainThreadCpuSeconds(pids)])
    return { all, loops }
  }
  const mark = async (): Promise<{ all: number, loops: number, at: number, client: NodeJS.CpuUsage }> => {
    const tree = await read()
    return { ...tree, at: performance.now(), client: process.cpuUsage() }
  }
  // Without an onset, read before the run starts, so that the reads cost it nothing.
  let before = fromMs > 0 ? undefined : await mark()
  const running = run()
  if (before === undefined) {
    running.catch(() => {}) // handled below, once awaited; not an unhandled rejection during the onset
    await new Promise((resolve) => setTimeout(resolve, fromMs))
    before = await mark()
  }
  const result = await running
  // This process's CPU and the clock before the reads of /proc that close the stretch, which cost it.
  const [seconds, client] = [(performance.now() - before.at) / 1000, process.cpuUsage(before.client)]
  const after = await read()
  return {
    result,
    used: {
      seconds,
      all: after.all - before.all,
      loops: after.loops - before.loops,
      client: (client.user + client.system) / 1e6
    }
  }
}

/** No CPU over no time: where CpuUsed are summed (cpuTogether), the sum of none. */
export const NO_CPU: Readonly<CpuUsed> = Object.freeze({ seconds: 0, all: 0, loops: 0, client: 0 })

/** Two stretches' CPU as one. */
export const cpuTogether = (a: CpuUsed, b: CpuUsed): CpuUsed => ({
  seconds: a.seconds + b.seconds, all: a.all + b.all, loops: a.loops + b.loops, client: a.client + b.client
})

/** Cores kept busy over a stretch: a server tree's event loops, the rest of the tree, and the client. */
export interface CoresBusy {
  loops: number
  rest: number
  client: number
}

export const coresBusy = (used: CpuUsed): CoresBusy => ({
  loops: used.loops / used.seconds,
  rest: (used.all - used.loops) / used.seconds,
  client: used.client / used.seconds
})

/**
 * CPU time this machine has spent so far, over all its cores, in seconds, from /proc/stat: `busy`
 * is user, nice, system, irq and softirq (not idle, iowait, nor steal); `steal` is the time the
 * hypervisor gave this machine's cores to other guests while it had work for them.
 */
export function machineCpuSeconds (stat = readFileSync('/proc/stat', 'latin1')): { busy: number, steal: number } {
  const [user, nice, system, , , irq, softirq, steal] = (/^cpu\s+(.*)$/m.exec(stat)?.[1] ?? '').split(/\s+/).map(Number)
  return {
    busy: ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0)) / CLOCK_TICKS_PER_S,
    steal: (steal ?? 0) / CLOCK_TICKS_PER_S
  }
}

/** The busy part of machineCpuSeconds. */
export const machineBusySeconds = (stat?: string): number => machineCpuSeconds(stat).busy

export interface QuietOptions {
  /** The machine is quiet when it uses fewer cores than this over a sample. */
  belowCores: number
  sampleMs: number
  /** Gives up waiting after this long. */
  maxMs: number
}

/** The default: a quarter of a core over 100 ms, for at most 10 s. */
export const QUIET: Readonly<QuietOptions> = Object.freeze({ belowCores: 0.25, sampleMs: 100, maxMs: 10_000 })

/**
 * Waits until the machine is quiet: what a server measured before is still doing after its load
 * stopped (jobs it had queued, its database's backlog) would otherwise be measured against the
 * next one. Returns how long it waited before the quiet sample began, in ms (0 when the machine
 * was quiet at once; maxMs or more if it never got quiet).
 */
export async function untilQuiet (options: QuietOptions = QUIET): Promise<number> {
  const from = performance.now()
  for (;;) {
    const busy0 = machineBusySeconds()
    const at0 = performance.now()
    await new Promise((resolve) => setTimeout(resolve, options.sampleMs))
    const cores = (machineBusySeconds() - busy0) / ((performance.now() - at0) / 1000)
    if (cores < options.belowCores) return Math.round(at0 - from)
    const waited = performance.now() - from
    if (waited >= options.maxMs) return Math.round(waited)
  }
}
