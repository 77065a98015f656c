import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { projectRoot } from '../../src/paths.js'
import { childEnv, stopChild } from './server-process.js'
import { stopOnSignal } from './stop-on-signal.js'

export interface WorkerHost {
  proc: ChildProcess
  pid: number
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

/**
 * Starts `node dist/src/worker/main.js` (what `npm run worker` runs) with only `env` and PATH, and
 * resolves once it logs "worker host ready". The caller stops it.
 */
export async function startWorkerHost (env: Record<string, string>, timeoutMs = 20_000): Promise<WorkerHost> {
  const proc = spawn(process.execPath, [`${projectRoot}/dist/src/worker/main.js`], {
    env: childEnv({ LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const forget = stopOnSignal(async () => await stopChild(proc))
  proc.once('exit', forget)
  let stderr = ''
  proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`worker host did not start in ${timeoutMs} ms: ${stderr}`))
    }, timeoutMs)
    const exited = (code: number | null): void => { clearTimeout(timer); reject(new Error(`worker host exited with ${code}: ${stderr}`)) }
    proc.once('exit', exited)
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (line.includes('"worker host ready"')) {
        clearTimeout(timer)
        proc.off('exit', exited)
        resolve()
      }
    })
  })
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => await stopChild(proc, signal)
  return { proc, pid: proc.pid as number, stop }
}
