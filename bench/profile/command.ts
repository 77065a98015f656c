/** The clinic command line that the profile scripts run: built here, so that a test can read it. */
import { join } from 'node:path'
import { projectRoot } from '../../src/paths.js'

export const TOOLS = ['doctor', 'flame', 'bubbleprof'] as const
export type Tool = (typeof TOOLS)[number]

export const WORKLOADS = {
  cpu: ['--job', 'fib:{"n":27}'],
  io: ['--job', 'http:{"delayMs":20,"bytes":1024}', '--job', 'sleep:{"ms":10}'],
  mixed: ['--job', 'fib:{"n":27}@1', '--job', 'http:{"delayMs":20,"bytes":1024}@4']
} as const
export type Workload = keyof typeof WORKLOADS

export interface ProfileCommand {
  command: string
  args: string[]
  env: Record<string, string>
}

/** The clinic command line for `tool`, from the environment's MODE, WORKLOAD and PROFILE_SECONDS. */
export function profileCommand (tool: Tool, env: NodeJS.ProcessEnv = process.env): ProfileCommand {
  const workload = (env.WORKLOAD ?? 'mixed') as Workload
  if (!Object.hasOwn(WORKLOADS, workload)) throw new Error(`WORKLOAD=${JSON.stringify(env.WORKLOAD)}: expected one of ${Object.keys(WORKLOADS).join(', ')}`)
  const seconds = env.PROFILE_SECONDS ?? '10'
  if (!/^\d+$/.test(seconds) || Number(seconds) < 1) throw new Error(`PROFILE_SECONDS=${JSON.stringify(seconds)}: expected a whole number of seconds`)
  // clinic runs --on-port through a shell once the server listens, with $PORT set to its port.
  const load = ['node', join(projectRoot, 'dist/bench/load/main.js'), '--url', 'http://127.0.0.1:$PORT',
    '--connections', '8', '--in-flight', '4', '--duration', seconds, '--quiet',
    ...WORKLOADS[workload].map((a) => a.startsWith('--') ? a : `'${a}'`)].join(' ')
  return {
    command: join(projectRoot, 'node_modules/.bin/clinic'),
    args: [tool, '--dest', join(projectRoot, '.clinic'), '--open=false', '--on-port', load, '--', 'node', join(projectRoot, 'dist/src/server.js')],
    // NO_INSIGHT: otherwise clinic first asks, on a terminal that may not be there, whether it may send usage data.
    env: { MODE: env.MODE ?? 'hybrid', PROCESSES: '1', PORT: '0', LOG_LEVEL: 'warn', NO_INSIGHT: '1', NO_UPDATE_NOTIFIER: '1' }
  }
}
