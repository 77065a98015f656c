import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { delayServiceFile } from '../paths.js'

/** The delay service, forked by the server, tells it over IPC where it listens: the one message there is. */
export interface UpstreamMessage {
  type: 'upstream-listening'
  url: string
}

export interface DelayServiceProcess {
  readonly url: string
  readonly pid: number
  stop (): Promise<void>
}

const START_TIMEOUT_MS = 10_000

/** Starts the delay service as a process of its own, so that it never shares an event loop with the server it feeds. */
export async function startDelayService (host = '127.0.0.1'): Promise<DelayServiceProcess> {
  // Its own options: a profiler's or a test runner's flags (execArgv, NODE_OPTIONS preloads) are not for it.
  const { NODE_OPTIONS: _preloads, ...env } = process.env
  const child = fork(delayServiceFile, [], {
    env: { ...env, HOST: host },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: []
  })
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('delay service did not start in time')), START_TIMEOUT_MS)
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`delay service exited with code ${code} while starting`)))
    child.on('message', (m: UpstreamMessage) => {
      if (m.type === 'upstream-listening') {
        clearTimeout(timer)
        resolve(m.url)
      }
    })
  }).catch((err: unknown) => {
    child.kill('SIGKILL')
    throw err
  })
  child.removeAllListeners('exit')
  return { url, pid: child.pid ?? 0, stop: () => stopChild(child) }
}

async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  // It stops when its IPC channel closes; it ignores signals, which may be a process group's.
  if (child.connected) child.disconnect()
  else child.kill('SIGKILL')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
  await exited
  clearTimeout(timer)
}
