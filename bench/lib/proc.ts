import { readdir, readFile } from 'node:fs/promises'

/** A process and its descendants, the root first, from /proc (Linux). */
export async function processTree (root: number): Promise<number[]> {
  const parentOf = new Map<number, number>()
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // The command name, in parentheses, may hold spaces: the fields after the last ")" are fixed.
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      parentOf.set(Number(entry), Number(fields[1]))
    } catch {} // exited meanwhile
  }
  const pids = [root]
  for (let i = 0; i < pids.length; i++) {
    for (const [pid, ppid] of parentOf) if (ppid === pids[i]) pids.push(pid)
  }
  return pids
}

/** Resident memory of a process and every descendant, in bytes. */
export async function processTreeRss (root: number): Promise<{ bytes: number, pids: number[] }> {
  const pids = await processTree(root)
  let bytes = 0
  for (const pid of pids) {
    try {
      const status = await readFile(`/proc/${pid}/status`, 'utf8')
      bytes += Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
    } catch {}
  }
  return { bytes, pids }
}

/** Samples a process tree's RSS every `everyMs` until stopped; reports the first and the peak sample. */
export function sampleRss (root: number, everyMs = 100): {
  stop: () => Promise<{ startBytes: number, peakBytes: number, pids: number }>
} {
  let startBytes = -1
  let peakBytes = 0
  let pids = 0
  let running = true
  const loop = (async () => {
    // eslint-disable-next-line no-unmodified-loop-condition -- the caller's stop() clears it
    while (running) {
      const { bytes, pids: tree } = await processTreeRss(root)
      if (startBytes < 0) startBytes = bytes
      if (bytes > peakBytes) peakBytes = bytes
      pids = Math.max(pids, tree.length)
      await new Promise((resolve) => setTimeout(resolve, everyMs))
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return { startBytes, peakBytes, pids }
    }
  }
}

const CLOCK_TICKS_PER_S = 100 // USER_HZ: 100 on every Linux that Node supports

/** CPU time (user + system, every thread) used so far by each of these processes, in seconds (0 for one gone). */
export async function cpuSecondsEach (pids: number[]): Promise<number[]> {
  return await Promise.all(pids.map(async (pid) => {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
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
      const stat = await readFile(`/proc/${pid}/task/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
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
