import type { Worker } from 'node:cluster'

/**
 * Asking the cluster primary over the worker's IPC channel: a request with an id, the primary's
 * answer with the same id, or an error after `timeoutMs`. The only messages there are: /metrics'
 * (src/metrics/cluster.ts) and the dashboard's (src/dashboard/feed.ts).
 */
let nextId = 0

export type Answer<T> = { id: number, ok: true, value: T } | { id: number, ok: false, error: string }

export async function askPrimary<T> (
  type: string, body: Record<string, unknown>, answerType: string, timeoutMs: number
): Promise<T> {
  const id = nextId++
  return await new Promise((resolve, reject) => {
    const onMessage = (m: Answer<T> & { type?: string }): void => {
      if (m?.type !== answerType || m.id !== id) return
      clearTimeout(timer)
      process.off('message', onMessage)
      if (m.ok) resolve(m.value)
      else reject(new Error(m.error))
    }
    const timer = setTimeout(() => {
      process.off('message', onMessage)
      reject(new Error(`the primary did not answer ${type} in ${timeoutMs} ms`))
    }, timeoutMs)
    process.on('message', onMessage)
    process.send?.({ ...body, type, id })
  })
}

/**
 * In the primary: answers a worker's request `id` with what `work` gives, or its error. The worker
 * may have died meanwhile: the primary hears the send's failure (primary.ts).
 */
export function answerWorker<T> (worker: Worker, type: string, id: number, work: Promise<T>): void {
  work.then(
    (value) => { worker.send({ type, id, ok: true, value } satisfies Answer<T> & { type: string }) },
    (err: unknown) => {
      worker.send({ type, id, ok: false, error: String(err) } satisfies Answer<T> & { type: string })
    }
  )
}
