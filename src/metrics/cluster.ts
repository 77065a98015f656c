import cluster from 'node:cluster'
import { AggregatorRegistry } from 'prom-client'
import { answer, askPrimary } from '../ipc.js'

/** A cluster worker asks the primary for the metrics of every worker, summed. */
export interface MetricsRequest {
  type: 'metrics-request'
  id: number
}

const TIMEOUT_MS = 6_000

/**
 * In a cluster worker: the metrics of every worker, summed, as the primary gathers them. Whichever
 * worker the client's connection reached, the answer is the same.
 */
export async function requestClusterMetrics (): Promise<string> {
  return await askPrimary<string>('metrics-request', {}, 'metrics-response', TIMEOUT_MS)
}

/** In the primary: answers workers' requests by asking every worker (prom-client's cluster protocol) and summing. */
export function serveClusterMetrics (): void {
  const aggregator = new AggregatorRegistry()
  cluster.on('message', (worker, m: MetricsRequest) => {
    if (m?.type !== 'metrics-request') return
    answer(worker, 'metrics-response', m.id, aggregator.clusterMetrics())
  })
}
