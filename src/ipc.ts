import type { Worker } from 'node:cluster'

/**
 * Questions over the IPC channel between a cluster worker and the primary, either way: a request
 * with an id, the answer with the same id, or an error after `timeoutMs`. The only messages there
 * are: /metrics' (src/metrics/cluster.ts) and the dashboard's (src/dashboard/feed.ts).
 */
let nextId = 0

export type Answer<T> = { id: number, ok: true, value: T } | { id: number, ok: false, error: string }

/** One end of the channel: the worker's `process`, or the primary's handle on a worker. */
type End = Pick<NodeJS.EventEmitter, 'on' | 'off'> & { send?: (message: object) => unknown }

async function ask<T> (
  end: End, type: string, body: Record<string, unknown>, answerType: string, timeoutMs: number
): Promise<T> {
  const id = nextId++
  return await new Promise((resolve, reject) => {
    const onMessage = (m: Answer<T> & { type?: string }): void => {
      if (m?.type !== answerType || m.id !== id) return
      clearTimeout(timer)
      end.off('message', onMessage)
      if (m.ok) resolve(m.value)
      else reject(new Error(m.error))
    }
    const timer = setTimeout(() => {
      end.off('message', onMessage)
      reject(new Error(`no answer to ${type} in ${timeoutMs} ms`))
    }, timeoutMs)
    end.on('message', onMessage)
    end.send?.({ ...body, type, id })
  })
}

/** In a cluster worker: asks the primary. */
export async function askPrimary<T> (
  type: string, body: Record<string, unknown>, answerType: string, timeoutMs: number
): Promise<T> {
  return await ask<T>(process, type, body, answerType, timeoutMs)
}

/** In the primary: asks one worker. */
export async function askWorker<T> (
  worker: Worker, type: string, answerType: string, timeoutMs: number
): Promise<T> {
  return await ask<T>(worker, type, {}, answerType, timeoutMs)
}

/**
 * Answers a request `id` with what `work` gives, or its error: the primary a worker's (the worker
 * may have died meanwhile: the primary hears the send's failure, primary.ts), or a worker the
 * primary's (`process`).
 */
export function answer<T> (to: Pick<End, 'send'>, type: string, id: number, work: Promise<T>): void {
  work.then(
    (value) => { to.send?.({ type, id, ok: true, value } satisfies Answer<T> & { type: string }) },
    (err: unknown) => {
      to.send?.({ type, id, ok: false, error: String(err) } satisfies Answer<T> & { type: string })
    }
  )
}
