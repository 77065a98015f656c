import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { profileCommand, TOOLS } from '../../bench/profile/command.js'
import { busiestProfile, type CpuProfile } from '../../bench/profile/profiles.js'
import { projectRoot } from '../../src/paths.js'

describe('the profile scripts\' clinic command', () => {
  it.each(TOOLS)('clinic %s: one process, the chosen MODE, the load client on clinic\'s port', (tool) => {
    const { command, args, env } = profileCommand(tool, { MODE: 'event-loop', WORKLOAD: 'cpu', PROFILE_SECONDS: '5' })
    expect(command).toBe(`${projectRoot}/node_modules/.bin/clinic`)
    expect(args.slice(0, 4)).toEqual([tool, '--dest', `${projectRoot}/.clinic`, '--open=false'])
    expect(args.slice(-3)).toEqual(['--', 'node', `${projectRoot}/dist/src/server.js`])
    expect(env).toEqual({ MODE: 'event-loop', PROCESSES: '1', PORT: '0', LOG_LEVEL: 'warn', NO_INSIGHT: '1', NO_UPDATE_NOTIFIER: '1' })
    const load = args[args.indexOf('--on-port') + 1]
    expect(load).toBe(`node ${projectRoot}/dist/bench/load/main.js --url http://127.0.0.1:$PORT --connections 8 --in-flight 4 --duration 5 --quiet --job 'fib:{"n":27}'`)
  })

  it('defaults to MODE=hybrid, a mixed workload and 10 s', () => {
    const { args, env } = profileCommand('doctor', {})
    expect(env.MODE).toBe('hybrid')
    expect(args.join(' ')).toContain('--duration 10')
    expect(args.join(' ')).toContain('--job \'fib:{"n":27}@1\' --job \'http:{"delayMs":20,"bytes":1024}@4\'')
  })

  it('refuses an unknown workload or duration by name', () => {
    expect(() => profileCommand('flame', { WORKLOAD: 'disk' })).toThrow(/WORKLOAD="disk": expected one of cpu, io, mixed/)
    expect(() => profileCommand('flame', { PROFILE_SECONDS: 'ten' })).toThrow(/PROFILE_SECONDS/)
  })
})

/** A profile of `busyUs` in Fastify's core and `idleUs` idle, one sample each. */
function profileOf (busyUs: number, idleUs: number): CpuProfile {
  return {
    nodes: [
      { id: 1, callFrame: { functionName: 'handleRequest', url: 'file:///app/node_modules/fastify/lib/handle-request.js' } },
      { id: 2, callFrame: { functionName: '(idle)', url: '' } }
    ],
    samples: [1, 2],
    timeDeltas: [busyUs, idleUs],
    startTime: 0,
    endTime: busyUs + idleUs
  }
}

describe('profile:layers\' reading of the profiles a server writes', () => {
  const write = async (dir: string, name: string, profile: CpuProfile): Promise<void> =>
    await writeFile(join(dir, name), JSON.stringify(profile))

  it('reads the busiest main thread: a cluster\'s worker rather than its primary, never a pool thread', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'profiles-'))
    try {
      await write(dir, 'CPU.20261208.010203.100.0.001.cpuprofile', profileOf(2_000, 6_000_000)) // the primary
      await write(dir, 'CPU.20261208.010203.101.0.002.cpuprofile', profileOf(4_000_000, 2_000_000)) // its worker
      await write(dir, 'CPU.20261208.010203.101.1.003.cpuprofile', profileOf(5_900_000, 100_000)) // a pool thread
      const layers = await busiestProfile(dir, 2)
      expect(layers?.['fastify core and routing']).toBe(4_000_000)
      expect(layers?.idle).toBe(2_000_000)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('waits for a profile still to come, and reads one again while it is being written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'profiles-'))
    try {
      await write(dir, 'CPU.20261208.010203.100.0.001.cpuprofile', profileOf(2_000, 6_000_000))
      await writeFile(join(dir, 'CPU.20261208.010203.101.0.002.cpuprofile'), '{"nodes":[') // half written
      const reading = busiestProfile(dir, 2)
      await sleep(300)
      await write(dir, 'CPU.20261208.010203.101.0.002.cpuprofile', profileOf(4_000_000, 2_000_000))
      expect((await reading)?.['fastify core and routing']).toBe(4_000_000)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
