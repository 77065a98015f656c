import cluster from 'node:cluster'
import { AggregatorRegistry } from 'prom-client'

// The messages between a cluster worker and the primary over their IPC channel: the only ones there are.

/** A cluster worker asks the primary for the metrics of every worker, summed. */
export interface MetricsRequest {
  type: 'metrics-request'
  id: number
}

export type MetricsResponse =
  | { type: 'metrics-response', id: number, ok: true, text: string }
  | { type: 'metrics-response', id: number, ok: false, error: string }

const TIMEOUT_MS = 6_000
let nextId = 0

/**
 * In a cluster worker: the metrics of every worker, summed, as the primary gathers them. Whichever
 * worker the client's connection reached, the answer is the same.
 */
export function requestClusterMetrics (): Promise<string> {
  const id = nextId++
  return new Promise((resolve, reject) => {
    const onMessage = (m: MetricsResponse): void => {
      if (m?.type !== 'metrics-response' || m.id !== id) return
      clearTimeout(timer)
      process.off('message', onMessage)
      if (m.ok) resolve(m.text)
      else reject(new Error(m.error))
    }
    const timer = setTimeout(() => {
      process.off('message', onMessage)
      reject(new Error('the primary did not answer with metrics'))
    }, TIMEOUT_MS)
    process.on('message', onMessage)
    const request: MetricsRequest = { type: 'metrics-request', id }
    process.send?.(request)
  })
}

/** In the primary: answers workers' requests by asking every worker (prom-client's cluster protocol) and summing. */
export function serveClusterMetrics (): void {
  const aggregator = new AggregatorRegistry()
  cluster.on('message', (worker, m: MetricsRequest) => {
    if (m?.type !== 'metrics-request') return
    // The worker that asked may have died meanwhile: the primary hears the send's failure (primary.ts).
    aggregator.clusterMetrics().then(
      (text) => { worker.send({ type: 'metrics-response', id: m.id, ok: true, text } satisfies MetricsResponse) },
      (err: unknown) => { worker.send({ type: 'metrics-response', id: m.id, ok: false, error: String(err) } satisfies MetricsResponse) }
    )
  })
}
