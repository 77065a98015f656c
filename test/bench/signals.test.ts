import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, readlink, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, describe, expect, it } from 'vitest'
import { processTree } from '../../bench/lib/proc.js'
import { projectRoot } from '../../src/paths.js'
import { alive, childEnv, waitFor } from '../helpers.js'
import { backendsAvailable } from '../support/backends.js'

// A bench signalled alone (`kill PID`, `timeout`, a CI runner's cancel: not a terminal's Ctrl-C,
// which reaches its whole process group) must stop what it started before it exits.

const commandLine = async (pid: number): Promise<string> =>
  (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ')

// What a test saw running and the directories it saw made: if the bench fails to stop them, the
// test still does (a process group would not do: the bench's children share the test runner's).
const seen = new Set<number>()
const made: string[] = []

afterEach(async () => {
  // Whatever is still alive and what it has started since it was seen, each parent before its
  // children, so that none starts another meanwhile.
  for (const root of [...seen].filter(alive)) {
    for (const pid of await processTree(root)) if (alive(pid)) process.kill(pid, 'SIGKILL')
  }
  seen.clear()
  await Promise.all(made.splice(0).map(async (dir) => await rm(dir, { recursive: true, force: true })))
})

/** Signals `proc` alone and resolves with its exit code, once every process of `tree` is gone too. */
async function signalled (proc: ChildProcess, tree: number[], signal: NodeJS.Signals): Promise<number | null> {
  for (const pid of tree) seen.add(pid)
  const exited = once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  proc.kill(signal)
  const [code] = await exited
  await waitFor(() => !tree.some(alive), 20_000)
  return code
}

describe('a bench stopped by a signal', () => {
  it('`npm run bench` on SIGTERM to npm stops the servers it started, then exits 143', async () => {
    const out = await mkdtemp(join(tmpdir(), 'bench-signal-'))
    made.push(out)
    // As a user runs it: npm passes the signal to its script, which execs the bench (package.json).
    const bench = spawn('npm', ['run', '--silent', 'bench', '--', '--quick', '--out', out], {
      cwd: projectRoot, env: childEnv({}), stdio: ['ignore', 'ignore', 'pipe']
    })
    seen.add(bench.pid as number)
    let stderr = ''
    bench.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    // Until the first row's servers are up: a model's process tree is a server's primary and more.
    let tree: number[] = []
    await waitFor(async () => {
      tree = await processTree(bench.pid as number)
      for (const pid of tree) seen.add(pid)
      const lines = await Promise.all(tree.map(commandLine))
      return lines.filter((l) => l.includes('dist/src/server.js')).length >= 5
    }, 30_000, 100)
    expect(tree.length).toBeGreaterThan(6)
    expect(await signalled(bench, tree, 'SIGTERM')).toBe(143)
    expect(stderr).toMatch(/SIGTERM: stopping the \d+ processes this run started, then exiting/)
  }, 60_000)

  const runnable = (backendsAvailable().postgres && backendsAvailable().redis) || process.env.REQUIRE_BACKENDS === '1'
  it.runIf(runnable)('its PostgreSQL, Redis and servers, on SIGINT, with their directories; exit 130', async () => {
    // The helpers a bench starts them with, in a process of their own that then waits to be stopped.
    const support = join(projectRoot, 'dist/test/support')
    const script = `
      import { exitCleanlyOnSignals } from '${support}/stop-on-signal.js'
      import { startPostgres, startRedis } from '${support}/backends.js'
      import { startServer } from '${support}/server-process.js'
      exitCleanlyOnSignals()
      const all = await Promise.allSettled([startPostgres(), startRedis(), startServer({ MODE: 'hybrid' })])
      const failed = all.find((r) => r.status === 'rejected')
      if (failed !== undefined) {
        // What did start is stopped the way a bench's failure by signal is.
        console.error(failed.reason)
        process.kill(process.pid, 'SIGINT')
      } else {
        const [postgres, redis, server] = all.map((r) => r.value)
        console.log(JSON.stringify({ pids: [postgres.pid(), redis.pid(), server.proc.pid] }))
      }
      setInterval(() => {}, 1000)
    `
    const driver = spawn(process.execPath, ['--input-type=module', '-e', script], { env: childEnv({}), stdio: ['ignore', 'pipe', 'pipe'] })
    seen.add(driver.pid as number)
    let stderr = ''
    driver.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    const line = await Promise.race([
      once(createInterface({ input: driver.stdout! }), 'line').then(([l]) => l as string),
      once(driver, 'exit').then(([code]) => { throw new Error(`the driver exited with ${String(code)} before all had started: ${stderr}`) })
    ])
    const { pids } = JSON.parse(line) as { pids: number[] }
    expect(pids.every(alive)).toBe(true)
    const tree = await processTree(driver.pid as number)
    for (const pid of tree) seen.add(pid)
    // Each backend's directory, from where it runs: PostgreSQL in its data directory (one below), Redis in its --dir.
    const [pg, redis] = await Promise.all(pids.slice(0, 2).map(async (pid) => await readlink(`/proc/${pid}/cwd`)))
    const dirs = [dirname(pg as string), redis as string]
    made.push(...dirs)
    expect(dirs.every((dir) => /cm-(pg|redis)-/.test(dir))).toBe(true)
    expect(dirs.every((dir) => existsSync(dir))).toBe(true)
    expect(await signalled(driver, tree, 'SIGINT')).toBe(130)
    expect(dirs.filter((dir) => existsSync(dir))).toEqual([])
  }, 60_000)
})
