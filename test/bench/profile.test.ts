import { describe, expect, it } from 'vitest'
import { profileCommand, TOOLS } from '../../bench/profile/command.js'
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
