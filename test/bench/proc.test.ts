import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { coresBusy, cpuTogether, machineBusySeconds, machineCpuSeconds, meterCpu, NO_CPU, untilQuiet } from '../../bench/lib/proc.js'

// A process that, told "loop MS" or "thread MS" on stdin, burns that much CPU on its main thread or
// on a worker thread (by CPU time, so that a slow machine spends the same, only later), says
// "done" and waits to be killed: the meter reads it before and after, so it must still be there.
const burner = `
const { Worker } = require('node:worker_threads')
const burn = (ms) => { const end = process.cpuUsage().user + ms * 1000; while (process.cpuUsage().user < end); }
process.stdin.on('data', (line) => {
  const [where, ms] = String(line).trim().split(' ')
  if (where === 'loop') {
    burn(Number(ms))
    process.stdout.write('done\\n')
    return
  }
  new Worker('(' + burn + ')(' + ms + ')', { eval: true }).once('exit', () => process.stdout.write('done\\n'))
})
process.stdout.write('ready\\n')
`

describe('meterCpu', () => {
  let child: ChildProcess | undefined
  afterEach(() => {
    child?.kill('SIGKILL')
    child = undefined
  })

  const start = async (): Promise<ChildProcess> => {
    const proc = spawn(process.execPath, ['-e', burner], { stdio: ['pipe', 'pipe', 'inherit'] })
    child = proc
    await once(proc.stdout!, 'data')
    return proc
  }
  const burn = async (proc: ChildProcess, where: 'loop' | 'thread', ms: number): Promise<void> => {
    proc.stdin!.write(`${where} ${ms}\n`)
    await once(proc.stdout!, 'data')
  }

  it('counts a process\'s main thread as its loop and its other threads as the rest', async () => {
    const proc = await start()
    const onLoop = await meterCpu(proc.pid!, async () => await burn(proc, 'loop', 300))
    expect(onLoop.used.loops).toBeGreaterThanOrEqual(0.25)
    expect(onLoop.used.all - onLoop.used.loops).toBeLessThan(0.1)

    const onThread = await meterCpu(proc.pid!, async () => await burn(proc, 'thread', 300))
    expect(onThread.used.all - onThread.used.loops).toBeGreaterThanOrEqual(0.25)
    expect(onThread.used.loops).toBeLessThan(0.1)
    // This process only waited: next to no CPU of its own.
    expect(onThread.used.client).toBeLessThan(0.1)
    const cores = coresBusy(onThread.used)
    expect(cores.rest).toBeCloseTo((onThread.used.all - onThread.used.loops) / onThread.used.seconds, 6)
  })

  it('waits for a quiet machine while another process still burns CPU, and gives up after its bound', async () => {
    const proc = await start()
    const burning = burn(proc, 'loop', 800)
    const waited = await untilQuiet({ belowCores: 0.5, sampleMs: 50, maxMs: 10_000 })
    await burning
    // The burner held a core for at least its 800 ms of CPU: no sample under half a core before it ended.
    expect(waited).toBeGreaterThanOrEqual(500)
    // Quiet by any bar: no wait. Never quiet (under no cores at all): it waits until its bound.
    expect(await untilQuiet({ belowCores: Infinity, sampleMs: 10, maxMs: 1_000 })).toBe(0)
    expect(await untilQuiet({ belowCores: 0, sampleMs: 20, maxMs: 200 })).toBeGreaterThanOrEqual(200)
  })

  it('counts this process\'s own CPU as the client\'s, and none of an onset it is told to skip', async () => {
    const proc = await start()
    const spinHere = (ms: number): void => {
      const end = process.cpuUsage().user + ms * 1000
      while (process.cpuUsage().user < end);
    }
    // The child burns first; the meter starts reading only after 1.5 s, long after it is done.
    const { used } = await meterCpu(proc.pid!, async () => {
      await burn(proc, 'loop', 100)
      await new Promise((resolve) => setTimeout(resolve, 1_600))
      spinHere(200)
    }, 1_500)
    expect(used.all).toBeLessThan(0.1)
    expect(used.client).toBeGreaterThanOrEqual(0.18)
  })
})

describe('cpuTogether', () => {
  it('sums two stretches field by field, and none is nothing', () => {
    const a = { seconds: 2, all: 3, loops: 1, client: 0.5 }
    expect(cpuTogether(NO_CPU, a)).toEqual(a)
    const b = { seconds: 1, all: 0.5, loops: 0.25, client: 0.25 }
    expect(cpuTogether(a, b)).toEqual({ seconds: 3, all: 3.5, loops: 1.25, client: 0.75 })
  })
})

describe('machineCpuSeconds', () => {
  it('counts user, nice, system, irq and softirq time as busy, not idle, iowait nor steal, and steal apart', () => {
    const stat = 'cpu  100 20 30 4000 50 6 7 800 0 0\ncpu0 50 10 15 2000 25 3 3 400 0 0\nintr 1 2 3\n'
    expect(machineBusySeconds(stat)).toBeCloseTo(1.63, 6)
    expect(machineCpuSeconds(stat).steal).toBeCloseTo(8, 6)
    expect(machineBusySeconds()).toBeGreaterThan(0)
  })
})
