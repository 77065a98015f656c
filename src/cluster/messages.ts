/** Messages between the server's processes over their IPC channels: the only ones there are. */

/** The delay service, forked by the server, tells it where it listens. */
export interface UpstreamMessage {
  type: 'upstream-listening'
  url: string
}

/** A cluster worker asks the primary for the metrics of every worker, summed. */
export interface MetricsRequest {
  type: 'metrics-request'
  id: number
}

export type MetricsResponse =
  | { type: 'metrics-response', id: number, ok: true, text: string }
  | { type: 'metrics-response', id: number, ok: false, error: string }
