/**
 * `npm run profile:doctor | profile:flame | profile:bubbleprof`: clinic against a one-process server
 * (PROCESSES=1: clinic follows one process, not cluster workers) under load from the project's load
 * client, MODE and WORKLOAD (cpu, io, mixed) chosen by env, PROFILE_SECONDS long (10). The HTML
 * report is left under .clinic/ (clinic prints its path).
 */
import { spawn } from 'node:child_process'
import { startDelayService } from '../../src/upstream/spawn.js'
import { join } from 'node:path'
import { projectRoot } from '../../src/paths.js'
import { profileCommand, TOOLS, type Tool } from './command.js'
import { summarizeDoctor } from './doctor-summary.js'

const tool = process.argv[2] as Tool
if (!TOOLS.includes(tool)) {
  process.stderr.write(`usage: node dist/bench/profile/main.js ${TOOLS.join('|')}\n`)
  process.exit(2)
}
const { command, args, env } = profileCommand(tool)
// The delay service runs outside clinic, so that only the server is profiled.
const upstream = await startDelayService()
process.stderr.write(`clinic ${tool}: MODE=${env.MODE} PROCESSES=1 WORKLOAD=${process.env.WORKLOAD ?? 'mixed'}, delay service ${upstream.url}\n`)
const child = spawn(command, args, { env: { ...process.env, ...env, UPSTREAM_URL: upstream.url }, stdio: 'inherit' })
child.on('exit', (code) => {
  void (async () => {
    await upstream.stop()
    const summary = tool === 'doctor' && code === 0 ? await summarizeDoctor(join(projectRoot, '.clinic')) : undefined
    if (summary !== undefined) {
      console.log(`doctor, ${summary.samples} samples: event-loop delay p50 ${summary.delayMs.p50} ms, p99 ${summary.delayMs.p99} ms, max ${summary.delayMs.max} ms; ` +
        `CPU ${summary.cpuPercent.mean}% mean, ${summary.cpuPercent.max}% max (100% = one core); doctor's verdict: ${summary.issueCategory ?? 'n/a'} ${summary.issues ?? ''}`)
    }
    process.exit(code ?? 1)
  })()
})
